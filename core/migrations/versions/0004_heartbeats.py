"""Heartbeats: the dead man's switch's pings, and each worker's own heartbeat for /healthz.

Revision ID: 0004_heartbeats
Revises: 0003_maintenance
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_heartbeats"
down_revision = "0003_maintenance"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "heartbeats",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("last_seen", sa.Float, nullable=False),
        sa.Column("alert_id", sa.Integer),
    )
    op.create_table(
        "worker_heartbeats",
        sa.Column("worker_id", sa.String(64), primary_key=True),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("beat_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("worker_heartbeats")
    op.drop_table("heartbeats")
