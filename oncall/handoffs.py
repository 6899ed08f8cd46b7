"""Handoff texts and gap warnings, sent by the leading worker once each.

At each change of who is on call (a rotation turn, a feed's event, an override) the incoming
person gets "You are on call for payments until Mon 09:00 CET (2 open alerts)" and the outgoing one a
one-line summary. The last handoff per team is stored, so it is texted once across workers and
restarts. A gap in a team's schedule (a feed with no event) is texted to its admins a day ahead.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import Connection

from config import Settings
from core import db
from core.timeutil import clock
from incidents import paging, records
from oncall import routing, schedule, store, teams
from oncall.people import display_name
from oncall.teams import Team
from outbox.queue import Kind
from security import mask
from services import Services

logger = logging.getLogger(__name__)
WARN_AHEAD = 86400.0


def open_alerts(conn: Connection, team: Team, settings: Settings) -> list[int]:
    """Ids of the firing alerts routed to `team`."""
    configured = teams.of(settings)
    found = []
    for alert in records.firing(conn):
        routed = routing.team_for(alert, configured)
        if routed is not None and routed.name == team.name:
            found.append(alert.id)
    return found


def run(services: Services, now: float | None = None) -> int:
    """Text every handoff and gap warning that is due; returns how many texts were queued."""
    configured = teams.of(services.settings)
    now = db.now() if now is None else now
    sent = 0
    with services.engine.begin() as conn:
        for team in configured.values():
            sent += _handoff(conn, team, services.settings, now)
            sent += _warn_gaps(conn, team, services.settings, now)
        store.prune_overrides(conn, now - 30 * 86400)
    return sent


def _handoff(conn: Connection, team: Team, settings: Settings, now: float) -> int:
    current = routing.on_call(conn, team, now)
    previous = store.last_handoff(conn, team.name)
    if not store.record_handoff(conn, team.name, current.phone, now, current.until):
        return 0
    ids = open_alerts(conn, team, settings)
    count = f"{len(ids)} open alert{'s' if len(ids) != 1 else ''}"
    texts = 0
    if current.phone:
        body = f"You are on call for {team.name} until {clock(current.until, team.zone, now)} ({count})"
        texts += paging.notify(conn, [current.phone], body, Kind.NOTICE, settings)
    outgoing = previous[0] if previous else None
    if outgoing and outgoing != current.phone:
        listed = (": " + " ".join(f"#{i}" for i in ids[:8])) if ids else ""
        body = (f"Your {team.name} shift is over: {display_name(settings, current.phone)} is on call until "
                f"{clock(current.until, team.zone, now)}. {count}{listed}")  # fmt: skip
        texts += paging.notify(conn, [outgoing], body, Kind.NOTICE, settings)
    logger.info(
        "team %s handed over from %s to %s", team.name, mask(outgoing or ""), mask(current.phone or "")
    )
    return texts


def _warn_gaps(conn: Connection, team: Team, settings: Settings, now: float) -> int:
    feed = routing.feed_of(conn, team)
    overrides = store.active_overrides(conn, now, team.name)
    texts = 0
    for gap in schedule.gaps(team, feed, now, now + WARN_AHEAD):
        if any(o.starts_at <= gap.start < o.ends_at for o in overrides):
            continue
        if not store.warn_once(conn, f"gap:{team.name}:{int(gap.start)}", now):
            continue
        admins = list(team.admins) or [n for n, role in settings.authorized.items() if role == "admin"]
        ends = "" if gap.end - gap.start >= schedule.HORIZON else f" to {clock(gap.end, team.zone, now)}"
        body = (f"{team.name} has nobody on call from {clock(gap.start, team.zone, now)}{ends}: "
                f"text ONCALL TAKE <hours> {team.name} to cover it")  # fmt: skip
        texts += paging.notify(conn, admins, body, Kind.NOTICE, settings)
        logger.warning("team %s: gap in its schedule from %s warned to %d admin(s)", team.name,
                       datetime.fromtimestamp(gap.start, team.zone).isoformat(), len(admins))  # fmt: skip
    return texts
