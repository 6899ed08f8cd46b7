"""Who gets paged and the texts that page them, the same for every alert source.

Rules (alerting.py), webhooks (incidents.intake), escalation, the reminder job and the `resolve`
command all queue their texts here, inside the caller's transaction, so the recipient choice,
the "quiet" rules, the reminder schedule and the recovery audience are decided in one place.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from sqlalchemy import Connection

from config import Settings
from conversation import composer
from core import db
from core.timeutil import humanize
from incidents import maintenance, records
from incidents.records import Alert, Status
from outbox import queue
from outbox.queue import Kind
from security import mask
from services import Services

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Route:
    """Who is paged for an alert; `escalates`: its team's policy escalates it, not ESCALATE_AFTER."""

    numbers: list[str]
    team: str = ""
    escalates: bool = False
    # The setting that chose `numbers` when no team did (what to change to page someone else).
    setting: str = ""


# The on-call package sits above incidents: it hands its router in (oncall.routing), and paging asks it.
Router = Callable[[Connection, Alert, Settings, float], Route | None]
# Matches label sets (routing_labels) against the teams ahead of time, with no store at hand.
Presorter = Callable[[list[Mapping[str, str]], Settings], None]
_routers: list[Router] = []
_presorters: list[Presorter] = []


def route_with(router: Router, presorter: Presorter | None = None) -> None:
    """Let `router` choose who is paged (None from it: the pager numbers); `presorter` sorts ahead."""
    _routers[:] = [router]
    _presorters[:] = [presorter] if presorter is not None else []


def routing_labels(name: str, severity: str, labels: Mapping[str, str]) -> dict[str, str]:
    """What a router's label matchers see: the labels, with the alert's alertname and severity."""
    return {"alertname": name, "severity": severity, **labels}


def presort(views: Iterable[Mapping[str, str]], settings: Settings) -> None:
    """Match these label sets against the teams now, so `route` inside a write transaction only looks up.

    Webhooks call it before they open their transaction: a pattern, however slow, never holds the store.
    """
    wanted = list(views)
    for presorter in _presorters:
        presorter(wanted, settings)


def route(conn: Connection, alert: Alert, settings: Settings, now: float | None = None) -> Route:
    """Who is paged for `alert`: its team's on-call when teams are configured, else the pager numbers."""
    for router in _routers:
        found = router(conn, alert, settings, db.now() if now is None else now)
        if found is not None:
            return found
    return fallback(settings)


def fallback(settings: Settings) -> Route:
    """Who is paged when no team takes an alert: ALERT_RECIPIENTS, else every responder and admin."""
    setting = "ALERT_RECIPIENTS" if settings.alert_recipients else "AUTHORIZED_NUMBERS"
    return Route(settings.pager_numbers, setting=setting)


def budget(settings: Settings, prefix: str = "") -> int:
    """Characters a page may use after `prefix` within SMS_MAX_SEGMENTS."""
    return composer.capacity("", settings.sms_max_segments) - len(prefix)


def _fits(text_: str, room: int) -> bool:
    return composer.length_units(composer.normalize(text_)) <= room


def page_text(alert: Alert, word: str, room: int) -> str:
    """'FIRING 3 HighCPU web-1,web-2 +1 #12: summary', the id always inside `room`."""
    count = f" {alert.size}" if alert.size > 1 else ""
    tail = f" #{alert.id}"
    name = composer.normalize(alert.name).strip() or "alert"
    # A very long name would crowd out where it fires and the id; half the budget at most.
    space = min(room // 2, room - len(word) - len(count) - len(tail) - 2)
    name = composer.shorten(name, max(11, space))
    head = f"{word}{count} {name}"
    places = [p for p in alert.places.split(",") if p]
    shown: list[str] = []
    for place in places:
        rest = len(places) - len(shown) - 1
        more = f" +{rest}" if rest else ""
        if not _fits(f"{head} {','.join([*shown, place])}{more}{tail}", room):
            break
        shown.append(place)
    hidden = max(0, alert.size - len(shown)) if places else 0
    where = (" " + ",".join(shown) if shown else "") + (f" +{hidden}" if hidden and shown else "")
    line = f"{head}{where}{tail}"
    summary = composer.normalize(alert.summary).strip()
    if summary and summary != alert.name and _fits(f"{line}: {summary[:12]}", room):
        line = f"{line}: {summary}"  # composer.fit cuts a long summary, never the id
    return line


def notify(
    conn: Connection,
    numbers: Iterable[str],
    text: str,
    kind: Kind,
    settings: Settings,
    alert_id: int | None = None,
    not_before: float | None = None,
) -> int:
    """Queue `text` for each number; returns how many were queued."""
    count = 0
    for number in numbers:
        queue.enqueue(conn, number, text, kind, settings, alert_id=alert_id, not_before=not_before)
        count += 1
    return count


def page(
    conn: Connection,
    alert: Alert,
    text: str,
    numbers: list[str],
    settings: Settings,
    now: float | None = None,
    kind: Kind = Kind.ALERT,
) -> int:
    """Queue a page for `alert` to `numbers` and start its reminder clock; returns the count.

    `Kind.ALERT` is a new alert's first page, which the storm limits never hold back;
    `Kind.UPDATE` is news about an open one (its group grew), which they may.
    """
    if not numbers:
        logger.warning("alert #%s has nobody to page: set ALERT_RECIPIENTS or responder numbers", alert.id)
        return 0
    if maintenance.hold(conn, alert, text, numbers, db.now() if now is None else now):
        logger.info("alert #%s is inside a maintenance window: its page is held", alert.id)
        return 0
    notify(conn, numbers, text, kind, settings, alert.id)
    records.notified(conn, alert.id, db.now() if now is None else now)
    return len(numbers)


def reminder_due(alert: Alert, repeat: float, now: float) -> bool:
    """A reminder is due `repeat` after the last text, or when a snooze taken since then ends."""
    if not repeat or alert.status != Status.FIRING or alert.quiet(now):
        return False
    last = alert.last_notified_at or alert.opened_at or alert.started_at
    if (alert.snoozed_until or 0) > last:
        return True  # quiet() above says the snooze is over: remind like a snoozed alarm
    return now - last >= repeat


def remind(
    conn: Connection, alert: Alert, text: str, numbers: list[str], settings: Settings, now: float
) -> int:
    """Queue a reminder, replacing an older one still waiting (Twilio down, storm limits)."""
    if maintenance.withheld(conn, alert, now):
        return 0
    queue.drop_queued(conn, alert.id, Kind.REMINDER, "replaced by a newer reminder")
    records.notified(conn, alert.id, now)
    return notify(conn, numbers, text, Kind.REMINDER, settings, alert.id)


def reminder_text(alert: Alert, settings: Settings, now: float) -> str:
    """'STILL FIRING 4h: 3 HighCPU web-1,web-2 +1 #12: CPU above 90%'."""
    word = f"STILL {alert.transition or 'FIRING'} {humanize(now - alert.started_at)}:"
    return page_text(alert, word, budget(settings))


def recovery_text(alert: Alert, who: str = "") -> str:
    """'RESOLVED after 23m HighCPU #12' (or 'RESOLVED by Alice after ...': `who` as people are named)."""
    lasted = humanize((alert.resolved_at or db.now()) - alert.started_at)
    by = f" by {who}" if who else ""
    return f"RESOLVED{by} after {lasted} {alert.name} #{alert.id}"


def send_recovery(
    conn: Connection,
    alert: Alert,
    settings: Settings,
    text: str | None = None,
    by: str | None = None,
    delay: bool = True,
    now: float | None = None,
    who: str = "",
) -> int:
    """Queue the recovery notice to everyone paged for `alert` (except `by`); returns the count.

    `who` is how the notice names `by` (oncall.people.display_name); the masked number without it.

    Delayed by RECOVERY_DELAY: if the alert fires again meanwhile, the notice is dropped and the
    incident reopened (records.reopen_flapping), so a flapping alert does not text each flip.
    """
    not_before = (db.now() if now is None else now) + (settings.recovery_delay if delay else 0)
    numbers = [n for n in queue.numbers_paged(conn, alert.id) if n != by]
    return notify(
        conn,
        numbers,
        text or recovery_text(alert, who or (mask(by) if by else "")),
        Kind.RECOVERY,
        settings,
        alert.id,
        not_before,
    )


def release_held(conn: Connection, settings: Settings, now: float) -> list[Alert]:
    """Send the pages maintenance windows held once no window covers their alert; returns those paged.

    An alert that closed meanwhile pages nobody; one someone acked, snoozed or silenced
    meanwhile is theirs already. Escalation counts from this page, the first anyone got.
    """
    paged = []
    for held in maintenance.released(conn, now):
        if held.alert.quiet(now):
            continue
        if page(conn, held.alert, held.text, held.numbers, settings, now):
            records.set_fields(conn, held.alert.id, opened_at=now)
            paged.append(held.alert)
    return paged


def release_ended_windows(services: Services) -> int:
    """The worker's periodic job: page what windows that ended by themselves held."""
    with services.engine.begin() as conn:
        paged = release_held(conn, services.settings, db.now())
    if paged:
        logger.info("maintenance ended: paged %s", ", ".join(f"#{a.id}" for a in paged))
    return len(paged)
