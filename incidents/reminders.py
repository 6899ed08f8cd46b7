"""Reminders for webhook alerts (Alertmanager, Datadog) while nobody has taken them.

Alertmanager's `repeat_interval` re-sends are duplicates to Operator (the same events), and
Datadog's Renotify does not text either, so Operator repeats open webhook alerts itself: one
"STILL FIRING 4h: 3 HighCPU web-1,web-2 +1 #12" per alert record (an Alertmanager group, never
per alert) every ALERT_REPEAT, to the current recipients, under the storm limits. Acked, snoozed (until
the snooze ends) and silenced (until the silence ends) alerts are skipped. Rules remind at their
own `repeat` (alerting.py). The leading worker runs `run(services)` as a periodic job.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select

import alerting
import store
from incidents import paging
from incidents import store as alert_store

logger = logging.getLogger(__name__)


def run(services: Any, now: float | None = None) -> int:
    """Queue the reminders that are due; returns how many alerts were reminded."""
    settings = services.settings
    repeat = settings.alert_repeat
    numbers = paging.recipients(settings)
    if not repeat or not numbers:
        return 0
    now = store.now() if now is None else now
    a = alert_store.alerts.c
    reminded = 0
    with services.engine.begin() as conn:
        rows = conn.execute(
            select(alert_store.alerts)
            .where(a.status == "firing", a.source != alerting.SOURCE, alert_store.loud(now))
            .order_by(a.id)
        ).all()
        for row in rows:
            alert = alert_store.Alert.from_row(row)
            if paging.reminder_due(alert, repeat, now):
                paging.remind(conn, alert, paging.reminder_text(alert, settings, now), numbers, settings, now)
                reminded += 1
    if reminded:
        logger.info("reminded %d open webhook alert(s)", reminded)
    return reminded
