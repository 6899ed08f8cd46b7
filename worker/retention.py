"""Pruning old rows so the store does not grow forever; run hourly by the leading worker.

Finished outbox texts and calls (sent, delivered, undelivered, failed, folded, dropped) go after
OUTBOX_DAYS (a call's record in `calls` with its outbox row), the inbound `messages` audit after MESSAGES_DAYS, webhook dedup keys after
OUTBOX_DAYS once their alert is closed, and the heartbeats of workers gone for a week. Rows of an
alert that is still firing are kept, since they say who was paged for it (its RESOLVED goes to
them) and what `ack` means to each phone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import Connection, Engine

from core import db
from inbound import audit
from incidents import records
from outbox import calls, queue
from services import Services
from worker import liveness

logger = logging.getLogger(__name__)

OUTBOX_DAYS = 30
MESSAGES_DAYS = 90
PERIOD = 3600.0  # how often the worker runs it
BATCH = 5000  # rows per delete, so no transaction holds the store for long
DAY = 86400.0


def run(services: Services, now: float | None = None, batch: int = BATCH) -> dict[str, int]:
    """Delete what is past its retention; returns the rows deleted per table."""
    now = db.now() if now is None else now
    engine = services.engine
    texts_before, messages_before = now - OUTBOX_DAYS * DAY, now - MESSAGES_DAYS * DAY
    deleted = {
        "outbox": _prune(
            engine, lambda conn: queue.prune(conn, texts_before, records.firing_ids(), batch), batch
        ),
        # After the outbox: a call's record goes with its outbox row.
        "calls": _prune(engine, lambda conn: calls.prune(conn, batch), batch),
        "messages": _prune(engine, lambda conn: audit.prune(conn, messages_before, batch), batch),
        "alert_events": _prune(engine, lambda conn: records.prune_events(conn, texts_before, batch), batch),
        "worker_heartbeats": _prune(engine, lambda conn: liveness.forget_old(conn, now), batch),
    }
    if any(deleted.values()):
        logger.info("retention: deleted %s", ", ".join(f"{n} {t}" for t, n in deleted.items() if n))
    return deleted


def _prune(engine: Engine, step: Callable[[Connection], int], batch: int) -> int:
    """Run `step` in its own short transaction until it deletes less than a batch."""
    total = 0
    while True:
        with engine.begin() as conn:
            count = step(conn)
        total += count
        if count < batch:
            return total
