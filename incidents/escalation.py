"""Escalation: an alert nobody acked within ESCALATE_AFTER is texted (or, with ESCALATION_VIA=call,
called) to ESCALATION_NUMBERS, once.

The worker loop calls `run(services)` periodically. Claiming an alert (setting escalated_at where
it is still NULL) and queueing its texts happen in one transaction, so several workers or a
restart never escalate the same alert twice.
"""

from __future__ import annotations

import logging

from core import db
from core.timeutil import humanize
from incidents import maintenance, paging, records
from outbox import calls
from outbox.queue import Kind
from services import Services

logger = logging.getLogger(__name__)


def run(services: Services, now: float | None = None) -> int:
    """Escalate every overdue alert; returns how many were escalated (0 when not configured)."""
    settings = services.settings
    if not settings.escalate_after or not settings.escalation_numbers:
        return 0
    now = db.now() if now is None else now
    escalated = 0
    with services.engine.begin() as conn:
        for alert in records.unescalated(conn, now - settings.escalate_after, now):
            if maintenance.withheld(conn, alert, now):
                continue  # nobody was meant to hear of it yet; its clock starts when its page goes out
            if paging.route(conn, alert, settings, now).escalates:
                continue  # its team's escalation policy runs it (oncall.escalation)
            if not records.escalate(conn, alert.id, now):
                continue
            if settings.escalation_via == "call":
                for number in settings.escalation_numbers:
                    calls.enqueue_call(conn, number, alert.id, settings, f"escalation call about #{alert.id}")
                escalated += 1
                logger.info(
                    "escalated alert #%s: calling %d number(s)", alert.id, len(settings.escalation_numbers)
                )
                continue
            prefix = f"ESCALATED {humanize(now - (alert.opened_at or alert.started_at))} unacked: "
            room = paging.budget(settings, prefix)
            body = prefix + paging.page_text(alert, alert.transition or "FIRING", room)
            paging.notify(conn, settings.escalation_numbers, body, Kind.ESCALATION, settings, alert.id)
            escalated += 1
            logger.info("escalated alert #%s to %d number(s)", alert.id, len(settings.escalation_numbers))
    return escalated
