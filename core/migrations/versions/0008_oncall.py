"""On-call teams: overrides typed by SMS, the last handoff per team, cached iCal feeds, warnings sent.

Revision ID: 0008_oncall
Revises: 0007_voice
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_oncall"
down_revision = "0007_voice"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "oncall_overrides",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("team", sa.String(32), nullable=False),
        sa.Column("phone", sa.String(32), nullable=False),
        sa.Column("starts_at", sa.Float(), nullable=False),
        sa.Column("ends_at", sa.Float(), nullable=False),
        sa.Column("created_by", sa.String(32), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
    )
    op.create_index("ix_oncall_overrides_team", "oncall_overrides", ["team"])
    op.create_index("ix_oncall_overrides_ends_at", "oncall_overrides", ["ends_at"])
    op.create_table(
        "oncall_handoffs",
        sa.Column("team", sa.String(32), primary_key=True),
        sa.Column("phone", sa.String(32)),
        sa.Column("since", sa.Float(), nullable=False),
        sa.Column("until", sa.Float()),
    )
    op.create_table(
        "oncall_feeds",
        sa.Column("team", sa.String(32), primary_key=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("fetched_at", sa.Float(), nullable=False),
    )
    op.create_table(
        "oncall_warnings",
        sa.Column("key", sa.String(128), primary_key=True),
        sa.Column("sent_at", sa.Float(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("oncall_warnings")
    op.drop_table("oncall_feeds")
    op.drop_table("oncall_handoffs")
    op.drop_index("ix_oncall_overrides_ends_at", "oncall_overrides")
    op.drop_index("ix_oncall_overrides_team", "oncall_overrides")
    op.drop_table("oncall_overrides")
