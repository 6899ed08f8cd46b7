"""The schema as it stood before Alembic: create what is missing, adopt what exists.

Databases made before migrations existed were kept up to date by a pass that created missing
tables and added missing columns; this first revision does the same once, so such a database is
adopted without losing a row, and a new one is created whole. Later revisions are ordinary.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Column, Float, Integer, MetaData, String, Table, Text

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# A frozen copy of the tables at that time; later changes belong in later revisions.
schema = MetaData()

Table(
    "messages",
    schema,
    Column("id", Integer, primary_key=True),
    Column("received_at", Float, nullable=False, index=True),
    Column("message_sid", String(64), unique=True),
    Column("phone", String(32), nullable=False, index=True),
    Column("phone_masked", String(32), nullable=False),
    Column("body", Text),
    Column("command", String(32)),
    Column("reply", Text),
    Column("segments", Integer),
    Column("latency_ms", Float),
    Column("outcome", String(16), nullable=False),
    Column("request_id", String(32)),
)

Table(
    "rate_limits",
    schema,
    Column("key", String(255), primary_key=True),
    Column("count", Integer, nullable=False),
    Column("expires_at", Float, nullable=False),
)

Table(
    "reply_pages",
    schema,
    Column("phone", String(32), primary_key=True),
    Column("pages", Text, nullable=False),
    Column("next_page", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
)

Table(
    "confirmations",
    schema,
    Column("phone", String(32), primary_key=True),
    Column("action", Text, nullable=False),
    Column("expires_at", Float, nullable=False),
)

Table(
    "outbox",
    schema,
    Column("id", Integer, primary_key=True),
    Column("to_number", String(32), nullable=False, index=True),
    Column("body", Text, nullable=False),
    Column("segments", Integer, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("alert_id", Integer, index=True),
    Column("status", String(16), nullable=False, index=True),
    Column("created_at", Float, nullable=False),
    Column("not_before", Float, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("claimed_by", String(64)),
    Column("claimed_until", Float),
    Column("provider_sid", String(64), index=True),
    Column("error_code", String(16)),
    Column("error_message", Text),
    Column("sent_at", Float),
    Column("delivery_updated_at", Float),
    Column("delivery_status", String(16)),
    Column("digest_id", Integer, index=True),
)

Table(
    "sms_pacing",
    schema,
    Column("key", String(64), primary_key=True),
    Column("next_at", Float, nullable=False),
)

Table(
    "rule_states",
    schema,
    Column("rule", String(64), primary_key=True),
    Column("state", String(16), nullable=False),
    Column("since", Float),  # when the current breach began (pending and firing)
    Column("alert_id", Integer),  # the incident this rule opened last
    Column("value", Float),
    Column("evaluated_at", Float),
    Column("next_eval_at", Float, nullable=False, default=0.0),
    Column("failures", Integer, nullable=False, default=0),
    Column("notice_sent", Integer, nullable=False, default=0),
    Column("last_error", Text),
    Column("evaluated_by", String(64)),
)

Table(
    "alerts",
    schema,
    Column("id", Integer, primary_key=True),
    Column("source", String(16), nullable=False),  # rule | alertmanager | datadog
    Column("key", String(255), nullable=False, index=True),
    Column("name", String(255), nullable=False),
    Column("summary", Text, nullable=False, default=""),
    Column("severity", String(32), nullable=False, default=""),
    Column("labels", Text, nullable=False, default="{}"),
    Column("url", Text),
    Column("group_key", Text),
    Column("status", String(16), nullable=False, index=True),  # firing | resolved
    Column("started_at", Float, nullable=False),
    Column("last_seen", Float, nullable=False),
    Column("resolved_at", Float),
    Column("acked_by", String(32)),
    Column("acked_at", Float),
    Column("snoozed_until", Float),
    Column("silence_id", String(64)),
    Column("last_notified_at", Float),
    Column("escalated_at", Float),
    Column("opened_at", Float),
    Column("size", Integer, nullable=False, default=1),
    Column("places", Text, nullable=False, default=""),
    Column("transition", String(16), nullable=False, default="FIRING"),
    Column("resolved_by", String(32)),
    Column("silenced_until", Float),
)

Table(
    "alert_events",
    schema,
    Column("event_key", String(255), primary_key=True),
    Column("alert_id", Integer, index=True),
    Column("received_at", Float, nullable=False, index=True),
)

Table(
    "monitor_cache",
    schema,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
    Column("expires_at", Float, nullable=False, index=True),
)


def upgrade() -> None:
    bind = op.get_bind()
    schema.create_all(bind, checkfirst=True)
    inspector = sa.inspect(bind)
    for table in schema.sorted_tables:
        present = {c["name"] for c in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name not in present:
                op.add_column(table.name, Column(column.name, column.type))


def downgrade() -> None:
    schema.drop_all(op.get_bind())
