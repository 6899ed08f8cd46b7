"""Maintenance windows and the pages they hold (incidents.maintenance).

Revision ID: 0003_maintenance
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_maintenance"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "maintenance_windows",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("label", sa.String(100)),
        sa.Column("value", sa.String(255)),
        sa.Column("created_by", sa.String(32), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("ends_at", sa.Float, nullable=False),
        sa.Column("ended_by", sa.String(32)),
    )
    op.create_index("ix_maintenance_windows_ends_at", "maintenance_windows", ["ends_at"])
    op.create_table(
        "maintenance_holds",
        sa.Column("alert_id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("window_id", sa.Integer, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("numbers", sa.Text, nullable=False),
        sa.Column("held_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("maintenance_holds")
    op.drop_index("ix_maintenance_windows_ends_at", "maintenance_windows")
    op.drop_table("maintenance_windows")
