"""The one door for outbound SMS: every text to a person is composed and queued here.

`enqueue()` writes to the durable `outbox` table inside the caller's transaction, so an alert and
the texts it causes are stored together or not at all. The worker process sends the outbox.
"""

from __future__ import annotations

import logging

from sqlalchemy import Column, Connection, Float, Integer, String, Table, Text

import composer
import store

logger = logging.getLogger(__name__)

# kind: reply | alert | reminder | recovery | digest | notice | escalation
outbox = Table(
    "outbox",
    store.metadata,
    Column("id", Integer, primary_key=True),
    Column("to_number", String(32), nullable=False, index=True),
    Column("body", Text, nullable=False),
    Column("segments", Integer, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("alert_id", Integer, index=True),
    # queued | sending | sent | delivered | undelivered | failed | folded | dropped
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
)


def enqueue(
    conn: Connection,
    to: str,
    body: str,
    kind: str,
    settings,
    alert_id: int | None = None,
    not_before: float | None = None,
) -> int:
    """Compose `body` for SMS and queue it for `to`; returns the outbox id."""
    text = composer.fit(body, settings.sms_max_segments, settings.sms_emoji)
    created = store.now()
    return conn.execute(
        outbox.insert().values(
            to_number=to,
            body=text,
            segments=composer.segments(text),
            kind=kind,
            alert_id=alert_id,
            status="queued",
            created_at=created,
            not_before=not_before or created,
            attempts=0,
        )
    ).inserted_primary_key[0]
