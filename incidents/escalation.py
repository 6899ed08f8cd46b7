"""Escalation: an alert nobody acked within ESCALATE_AFTER is texted to ESCALATION_NUMBERS, once.

The worker loop calls `run(services)` periodically. Claiming an alert (setting escalated_at where
it is still NULL) and queueing its texts happen in one transaction, so several workers or a
restart never escalate the same alert twice.
"""

from __future__ import annotations

import logging

from sqlalchemy import Connection, func, select, update

import store
from incidents import paging
from incidents import store as alert_store
from timeutil import humanize

logger = logging.getLogger(__name__)


def due(conn: Connection, escalate_after: float, now: float) -> list[alert_store.Alert]:
    """Firing alerts nobody acked, snoozed or silenced, open longer than `escalate_after`."""
    a = alert_store.alerts
    opened = func.coalesce(a.c.opened_at, a.c.started_at)
    rows = conn.execute(
        select(a)
        .where(
            a.c.status == "firing",
            a.c.escalated_at.is_(None),
            alert_store.loud(now),
            opened <= now - escalate_after,
        )
        .order_by(a.c.id)
    ).all()
    return [alert_store.Alert.from_row(r) for r in rows]


def run(services, now: float | None = None) -> int:
    """Escalate every overdue alert; returns how many were escalated (0 when not configured)."""
    settings = services.settings
    if not settings.escalate_after or not settings.escalation_numbers:
        return 0
    now = store.now() if now is None else now
    escalated = 0
    with services.engine.begin() as conn:
        for alert in due(conn, settings.escalate_after, now):
            claimed = conn.execute(
                update(alert_store.alerts)
                .where(alert_store.alerts.c.id == alert.id, alert_store.alerts.c.escalated_at.is_(None))
                .values(escalated_at=now)
            ).rowcount
            if not claimed:
                continue
            prefix = f"ESCALATED {humanize(now - (alert.opened_at or alert.started_at))} unacked: "
            room = paging.budget(settings, prefix)
            body = prefix + paging.page_text(alert, alert.transition or "FIRING", room)
            paging.notify(conn, settings.escalation_numbers, body, "escalation", settings, alert.id)
            escalated += 1
            logger.info("escalated alert #%s to %d number(s)", alert.id, len(settings.escalation_numbers))
    return escalated
