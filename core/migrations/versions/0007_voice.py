"""Voice calls: how each call about an alert went (outbox.calls).

Revision ID: 0007_voice
Revises: 0006_canonical
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_voice"
down_revision = "0006_canonical"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "calls",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("alert_id", sa.Integer()),
        sa.Column("to_number", sa.String(32), nullable=False),
        sa.Column("call_sid", sa.String(64)),
        sa.Column("call_status", sa.String(16)),
        sa.Column("answered_by", sa.String(32)),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text()),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
    )
    op.create_index("ix_calls_alert_id", "calls", ["alert_id"])
    op.create_index("ix_calls_call_sid", "calls", ["call_sid"])


def downgrade() -> None:
    op.drop_index("ix_calls_call_sid", "calls")
    op.drop_index("ix_calls_alert_id", "calls")
    op.drop_table("calls")
