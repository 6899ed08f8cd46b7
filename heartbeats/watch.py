"""The periodic job of the dead man's switch: page for heartbeats that went silent, remind, forget.

The leading worker runs `run(services)` every few seconds (worker.loop.PERIODIC_JOBS). A silence
opens one incident ("HEARTBEAT MISSING backup, last seen 12m ago #14") through incidents, so it is
acked, snoozed, escalated and listed like any alert; the next ping closes it (heartbeats.pings).
"""

from __future__ import annotations

import logging

from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError

from config import Heartbeat, Settings
from core import db
from core.timeutil import humanize
from heartbeats import pings
from incidents import paging, records
from incidents.records import Alert
from incidents.sources import Source, Status
from services import Services

logger = logging.getLogger(__name__)

# The word pages, reminders and `alerts` show for a silent heartbeat.
MISSING = "MISSING"


def recipients(heartbeat: Heartbeat, settings: Settings) -> list[str]:
    return list(heartbeat.recipients) or settings.pager_numbers


def alert_name(name: str) -> str:
    return f"heartbeat {name}"


def _missing(heartbeat: Heartbeat, still: bool = False) -> str:
    """'HEARTBEAT MISSING backup', or 'INTEGRATION SILENT prometheus' for an integration's expect_every."""
    if heartbeat.integration:
        return f"{'STILL' if still else 'INTEGRATION'} SILENT {heartbeat.integration}"
    return f"{'STILL' if still else 'HEARTBEAT'} MISSING {heartbeat.name}"


def run(services: Services, now: float | None = None) -> int:
    """Open incidents for heartbeats silent past their timeout and remind open ones; returns pages."""
    settings = services.settings
    now = db.now() if now is None else now
    paged = 0
    with services.engine.begin() as conn:
        pings.forget(conn, [h.name for h in settings.heartbeats])
        for heartbeat in settings.heartbeats:
            paged += _check(conn, heartbeat, settings, now)
    return paged


def _check(conn: Connection, heartbeat: Heartbeat, settings: Settings, now: float) -> int:
    seen = pings.state(conn, heartbeat.name, lock=True)
    if seen is None:
        if heartbeat.integration:  # counted from start-up: armed by the first check
            pings.ping(conn, heartbeat, settings, now)
        return 0  # never pinged: not armed yet
    if seen.alert_id is not None:
        alert = records.get(conn, seen.alert_id)
        if alert is not None and alert.status == Status.FIRING:
            _remind(conn, alert, heartbeat, seen.last_seen, settings, now)
        return 0
    if now - seen.last_seen <= heartbeat.timeout:
        return 0
    # Missing again before the RESOLVED of the last silence went out: the same incident, no page.
    reopened = records.reopen_flapping(conn, Source.HEARTBEAT, heartbeat.name, now, settings.recovery_delay)
    if reopened is not None:
        pings.opened(conn, heartbeat.name, reopened.id)
        return 0
    alert, new = records.fire(
        conn,
        Source.HEARTBEAT,
        heartbeat.name,
        f"integration {heartbeat.integration}" if heartbeat.integration else alert_name(heartbeat.name),
        summary=f"no {'event' if heartbeat.integration else 'ping'} within {humanize(heartbeat.timeout)}",
        started_at=seen.last_seen + heartbeat.timeout,
    )
    records.set_fields(conn, alert.id, transition=MISSING)
    pings.opened(conn, heartbeat.name, alert.id)
    if not new:
        return 0
    text = f"{_missing(heartbeat)}, last seen {humanize(now - seen.last_seen)} ago #{alert.id}"
    sent = paging.page(conn, alert, text, recipients(heartbeat, settings), settings, now)
    logger.warning("heartbeat %s missing for %s: alert #%d", heartbeat.name, humanize(now - seen.last_seen),
                   alert.id)  # fmt: skip
    return sent


def check(services: Services) -> tuple[bool, str]:
    """For `flask --app app check`: fails while a heartbeat is silent past its timeout."""
    settings, now = services.settings, db.now()
    if not settings.heartbeats:
        return True, "none configured"
    silent, waiting = [], []
    try:
        with services.engine.connect() as conn:
            for heartbeat in settings.heartbeats:
                seen = pings.state(conn, heartbeat.name)
                if seen is None:
                    waiting.append(heartbeat.name)
                elif now - seen.last_seen > heartbeat.timeout:
                    silent.append(f"{heartbeat.name} last seen {humanize(now - seen.last_seen)} ago")
    except SQLAlchemyError as exc:
        return False, f"cannot read the heartbeats: store unreachable ({exc.__class__.__name__})"
    parts = [f"MISSING {', '.join(silent)}"] if silent else [f"{len(settings.heartbeats)} configured"]
    if waiting:
        parts.append(f"never pinged (not armed): {', '.join(waiting)}")
    return not silent, "; ".join(parts)


def _remind(
    conn: Connection, alert: Alert, heartbeat: Heartbeat, last_seen: float, settings: Settings, now: float
) -> None:
    """Every ALERT_REPEAT while nobody took it, to the heartbeat's own recipients."""
    if not paging.reminder_due(alert, settings.alert_repeat, now):
        return
    text = f"{_missing(heartbeat, still=True)}, last seen {humanize(now - last_seen)} ago #{alert.id}"
    paging.remind(conn, alert, text, recipients(heartbeat, settings), settings, now)
