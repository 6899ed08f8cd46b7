"""Indexes for the dashboard: the message log newest first by number, command and outcome, the
outbox by time, number, kind and status (its log, the month's segments and the charts).

Revision ID: 0009_dashboard
Revises: 0008_oncall
"""

from __future__ import annotations

from alembic import op

revision = "0009_dashboard"
down_revision = "0008_oncall"
branch_labels = None
depends_on = None

INDEXES = {
    "ix_messages_received_id": ("messages", ["received_at", "id", "segments"]),
    "ix_messages_phone_received": ("messages", ["phone", "received_at"]),
    "ix_messages_command_received": ("messages", ["command", "received_at"]),
    "ix_messages_outcome_received": ("messages", ["outcome", "received_at"]),
    "ix_outbox_created_id": ("outbox", ["created_at", "id"]),
    "ix_outbox_to_created": ("outbox", ["to_number", "created_at"]),
    "ix_outbox_kind_created": ("outbox", ["kind", "created_at"]),
    "ix_outbox_status_created": ("outbox", ["status", "created_at"]),
}


def upgrade() -> None:
    for name, (table, columns) in INDEXES.items():
        op.create_index(name, table, columns)


def downgrade() -> None:
    for name, (table, _) in INDEXES.items():
        op.drop_index(name, table_name=table)
