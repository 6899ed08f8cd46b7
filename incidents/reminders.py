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

from core import db
from incidents import paging, records
from services import Services

logger = logging.getLogger(__name__)


def run(services: Services, now: float | None = None) -> int:
    """Queue the reminders that are due; returns how many alerts were reminded."""
    settings = services.settings
    repeat = settings.alert_repeat
    if not repeat:
        return 0
    now = db.now() if now is None else now
    reminded = 0
    with services.engine.begin() as conn:
        for alert in records.loud_webhook_alerts(conn, now):
            if paging.reminder_due(alert, repeat, now):
                text = paging.reminder_text(alert, settings, now)
                numbers = paging.route(conn, alert, settings, now).numbers
                reminded += bool(numbers and paging.remind(conn, alert, text, numbers, settings, now))
    if reminded:
        logger.info("reminded %d open webhook alert(s)", reminded)
    return reminded
