"""Dashboard sessions in the store, so logout, a new password and "log everyone out" end them.

Revision ID: 0010_dashboard_sessions
Revises: 0009_dashboard
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_dashboard_sessions"
down_revision = "0009_dashboard"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dashboard_sessions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("username", sa.String(200), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("credential", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.Column("ended_at", sa.Float()),
        sa.Column("ended_by", sa.String(16)),
    )
    op.create_index("ix_dashboard_sessions_expires_at", "dashboard_sessions", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_dashboard_sessions_expires_at", "dashboard_sessions")
    op.drop_table("dashboard_sessions")
