"""Pruning old rows so the store does not grow forever; run hourly by the leading worker.

Finished outbox texts (sent, delivered, undelivered, failed, folded, dropped) go after
OUTBOX_DAYS, the inbound `messages` audit after MESSAGES_DAYS, and webhook dedup keys after
OUTBOX_DAYS once their alert is closed. Rows of an alert that is still firing are kept, since
they say who was paged for it (its RESOLVED goes to them) and what `ack` means to each phone.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import Connection, Table, delete, or_, select

import sms
import store
from incidents import store as alert_store

logger = logging.getLogger(__name__)

OUTBOX_DAYS = 30
MESSAGES_DAYS = 90
PERIOD = 3600.0  # how often the worker runs it
BATCH = 5000  # rows per delete, so no transaction holds the store for long
FINISHED = ("sent", "delivered", "undelivered", "failed", "folded", "dropped")
DAY = 86400.0


def run(services: Any, now: float | None = None, batch: int = BATCH) -> dict[str, int]:
    """Delete what is past its retention; returns the rows deleted per table."""
    now = store.now() if now is None else now
    engine = services.engine
    o, e, a = sms.outbox.c, alert_store.alert_events.c, alert_store.alerts.c
    open_alerts = select(a.id).where(a.status == "firing")
    outbox_cutoff = now - OUTBOX_DAYS * DAY
    deleted = {
        "outbox": _prune(
            engine,
            batch,
            sms.outbox,
            o.id,
            o.status.in_(FINISHED),
            o.created_at < outbox_cutoff,
            or_(o.alert_id.is_(None), o.alert_id.not_in(open_alerts)),
        ),
        "messages": _prune(
            engine,
            batch,
            store.messages,
            store.messages.c.id,
            store.messages.c.received_at < now - MESSAGES_DAYS * DAY,
        ),
        "alert_events": _prune(
            engine,
            batch,
            alert_store.alert_events,
            e.event_key,
            e.received_at < outbox_cutoff,
            or_(e.alert_id.is_(None), e.alert_id.not_in(open_alerts)),
        ),
    }
    if any(deleted.values()):
        logger.info("retention: deleted %s", ", ".join(f"{n} {t}" for t, n in deleted.items() if n))
    return deleted


def _prune(engine: Any, batch: int, table: Table, key: Any, *conditions: Any) -> int:
    total = 0
    while True:
        with engine.begin() as conn:
            count = _delete_batch(conn, batch, table, key, conditions)
        total += count
        if count < batch:
            return total


def _delete_batch(conn: Connection, batch: int, table: Table, key: Any, conditions: tuple) -> int:
    keys = conn.scalars(select(key).where(*conditions).limit(batch)).all()
    if keys:
        conn.execute(delete(table).where(key.in_(keys)))
    return len(keys)
