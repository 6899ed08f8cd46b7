"""Teams' escalation policies, run by the leading worker: each step once, recorded with its alert.

A step is due `after` its alert's page (plus a whole round per repeat). Claiming it is recording
the alert event `escalation:<alert>:<round>:<step>` in the same transaction as its texts, so a
restart, or a new leader after a failover, never runs a step twice. An ack, snooze, silence or
resolve stops the policy: a quiet or closed alert is skipped. A call a step placed that comes back
`escalate` (pressed 1), or a step whose calls all came back `not_reached`, makes the next step due
at once rather than at its time.
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


def sequence(team: Team) -> list[tuple[int, int, Step]]:
    """(round, index, step) of every step of the policy, in the order they run."""
    policy = team.escalation
    if policy is None:
        return []
    return [(r, i, step) for r in range(policy.repeat + 1) for i, step in enumerate(policy.steps, start=1)]


def step_of(event: str) -> tuple[int, int] | None:
    """(round, index) of a step's claim `escalation:<alert>:<round>:<index>`; None for anything else."""
    parts = event.split(":")
    if len(parts) == 4 and parts[0] + ":" == PREFIX and parts[2].isdigit() and parts[3].isdigit():
        return int(parts[2]), int(parts[3])
    return None


def _taken_steps(conn: Connection, alert: Alert) -> list[tuple[int, int]]:
    """(round, index) of each step claimed for this alert (not the calls they placed)."""
    found = (step_of(key) for key in records.notes(conn, alert.id, f"{PREFIX}{alert.id}:"))
    return [step for step in found if step is not None]


def _calls_of(conn: Connection, alert: Alert, round_: int, index: int) -> list[int]:
    prefix = f"{PREFIX}{alert.id}:{round_}:{index}:call:"
    return [
        int(k[len(prefix) :]) for k in records.notes(conn, alert.id, prefix) if k[len(prefix) :].isdigit()
    ]


def _moved_on(conn: Connection, alert: Alert, round_: int, index: int) -> bool:
    """The step's calls ask for the next step now: someone pressed 1, or nobody was reached."""
    placed = [calls.get(conn, call_id) for call_id in _calls_of(conn, alert, round_, index)]
    outcomes = [c.outcome for c in placed if c is not None]
    if any(o is calls.Outcome.ESCALATE for o in outcomes):
        return True
    return bool(outcomes) and all(o is calls.Outcome.NOT_REACHED for o in outcomes)


def _due(
    conn: Connection, alert: Alert, team: Team, opened: float, now: float
) -> list[tuple[int, int, Step]]:
    """The steps due by their time, and the step after the last one taken when its calls moved on."""
    due = due_steps(team, opened, now)
    taken = _taken_steps(conn, alert)
    order = sequence(team)
    positions = {(r, i): n for n, (r, i, _) in enumerate(order)}
    last = max((positions[t] for t in taken if t in positions), default=None)
    if last is not None and last + 1 < len(order) and _moved_on(conn, alert, *order[last][:2]):
        if order[last + 1] not in due:
            due.append(order[last + 1])
    return sorted(due, key=lambda d: positions[d[:2]])


def _escalate(conn: Connection, alert: Alert, team: Team, settings: Settings, now: float) -> int:
    opened = alert.opened_at or alert.started_at
    claimed = [
        (round_, index, step)
        for round_, index, step in _due(conn, alert, team, opened, now)
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
            # Noted with the step, so the call's outcome can move the policy on (_moved_on).
            call_id = place_call(conn, number, alert, body, settings)
            records.note(conn, alert.id, f"{PREFIX}{alert.id}:{round_}:{index}:call:{call_id}", now)
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


def place_call(conn: Connection, number: str, alert: Alert, text: str, settings: Settings) -> int:
    """A `via: call` step: a voice call the worker places (outbox.calls), read out when answered."""
    return calls.enqueue_call(conn, number, alert.id, settings, about=text)
