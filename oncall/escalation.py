"""Teams' escalation policies, run by the leading worker: each step once, recorded with its alert.

A step is due `after` its alert's page (plus a whole round per repeat). Claiming it is recording
the alert event `escalation:<alert>:<round>:<step>` in the same transaction as its texts, so a
restart, or a new leader after a failover, never runs a step twice. An ack, snooze, silence or
resolve stops the policy: a quiet or closed alert is skipped.
"""

from __future__ import annotations

import logging

from sqlalchemy import Connection

from config import Settings
from core import db
from core.timeutil import humanize
from incidents import maintenance, paging, records
from incidents.records import Alert
from oncall import routing, teams
from oncall.teams import Step, Team
from outbox import calls
from outbox.queue import Kind
from security import mask
from services import Services

logger = logging.getLogger(__name__)
PREFIX = "escalation:"


def run(services: Services, now: float | None = None) -> int:
    """Run every due escalation step; returns how many steps notified someone."""
    configured = teams.of(services.settings)
    if not any(t.escalation for t in configured.values()):
        return 0
    now = db.now() if now is None else now
    done = 0
    with services.engine.begin() as conn:
        for alert in records.firing(conn):
            if alert.quiet(now) or alert.last_notified_at is None or maintenance.withheld(conn, alert, now):
                continue
            team = routing.team_for(alert, configured)
            if team is not None and team.escalation is not None:
                done += _escalate(conn, alert, team, services.settings, now)
    return done


def due_steps(team: Team, opened: float, now: float) -> list[tuple[int, int, Step]]:
    """(round, index, step) of every step due by `now`, in order."""
    policy = team.escalation
    if policy is None:
        return []
    found = []
    for round_ in range(policy.repeat + 1):
        for index, step in enumerate(policy.steps, start=1):
            if opened + round_ * policy.round_length + step.after <= now:
                found.append((round_, index, step))
    return found


def _escalate(conn: Connection, alert: Alert, team: Team, settings: Settings, now: float) -> int:
    opened = alert.opened_at or alert.started_at
    claimed = [
        (round_, index, step)
        for round_, index, step in due_steps(team, opened, now)
        if records.note(conn, alert.id, f"{PREFIX}{alert.id}:{round_}:{index}", now)
    ]
    if not claimed:
        return 0
    # A worker that was down for a while catches up with the latest step only, not a burst of all.
    round_, index, step = claimed[-1]
    if round_ == 0 and index == 1 and step.after == 0 and step.notify == "oncall" and step.via == "sms":
        return 0  # that is the page itself
    numbers = targets(conn, team, step, now)
    prefix = f"ESCALATED {humanize(now - opened)} unacked: "
    body = prefix + paging.page_text(alert, alert.transition or "FIRING", paging.budget(settings, prefix))
    for number in numbers:
        if step.via == "call":
            place_call(conn, number, alert, body, settings)
        else:
            paging.notify(conn, [number], body, Kind.ESCALATION, settings, alert.id)
    logger.info("alert #%s: team %s escalation step %d (round %d) to %s", alert.id, team.name, index,
                round_ + 1, ", ".join(mask(n) for n in numbers) or "nobody")  # fmt: skip
    return 1


def targets(conn: Connection, team: Team, step: Step, now: float) -> list[str]:
    """The numbers a step notifies; nobody on call (a gap) means the whole team."""
    everyone = [m.phone for m in team.rota]
    if step.notify == "numbers":
        return list(step.numbers)
    if step.notify == "team":
        return everyone
    current = routing.on_call(conn, team, now)
    phone = current.phone if step.notify == "oncall" else current.next_phone
    return [phone] if phone else everyone


def place_call(conn: Connection, number: str, alert: Alert, text: str, settings: Settings) -> None:
    """A `via: call` step: a voice call the worker places (outbox.calls), read out when answered."""
    calls.enqueue_call(conn, number, alert.id, settings, about=text)
