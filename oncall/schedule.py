"""Who a team's schedule puts on call at an instant: its rotation, or its iCal feed.

Pure functions of the team, the feed text and the time (UNIX seconds), so tests pass any `now`.
Whole-day rotations hand over at the same wall-clock time in the start's zone, whatever the
daylight-saving offset that day; shorter periods count elapsed seconds.
"""

from __future__ import annotations

import functools
import logging
import math
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import icalendar
import recurring_ical_events

from oncall.teams import Member, Rotation, Team

logger = logging.getLogger(__name__)

# How far ahead "who is next" and the gap warning look.
HORIZON = 8 * 86400.0
_DIGITS = re.compile(r"\D")


@dataclass(frozen=True)
class Shift:
    """`phone` is on call from `start` to `end` (None: nobody, a gap in the schedule)."""

    phone: str | None
    start: float
    end: float


def handoff(rotation: Rotation, index: int) -> float:
    """The instant of handoff number `index` (0 is `start`)."""
    if rotation.days:
        local = rotation.start.replace(tzinfo=None) + timedelta(days=rotation.days * index)
        return local.replace(tzinfo=rotation.start.tzinfo).timestamp()
    return rotation.start.timestamp() + rotation.every * index


def rotation_shift(team: Team, rotation: Rotation, now: float) -> Shift:
    """The rotation's shift around `now` (before `start` the last member's turn runs up to it)."""
    index = math.floor((now - rotation.start.timestamp()) / rotation.every)
    # A DST change moves wall-clock handoffs by an hour against the elapsed-time estimate.
    while handoff(rotation, index) > now:
        index -= 1
    while handoff(rotation, index + 1) <= now:
        index += 1
    rota = team.rota
    return Shift(rota[index % len(rota)].phone, handoff(rotation, index), handoff(rotation, index + 1))


def feed_shifts(team: Team, feed: str, start: float, end: float) -> list[Shift]:
    """The feed's events between `start` and `end` as shifts of the members they name, in order."""
    try:
        events = recurring_ical_events.of(_calendar(feed)).between(_utc(start), _utc(end))
    except Exception:  # noqa: BLE001 - a broken feed is a gap, reported by the gap warning, not a crash
        logger.warning("team %s: its iCal feed cannot be read", team.name, exc_info=True)
        return []
    shifts = []
    for event in events:
        member = _named(team, event)
        if member is None:
            continue
        begin, finish = _instant(event.get("DTSTART"), team), _instant(event.get("DTEND"), team)
        if begin is None:
            continue
        shifts.append(Shift(member.phone, begin, finish if finish is not None else begin + 86400))
    return sorted(shifts, key=lambda s: (s.start, s.end))


def shift_at(team: Team, feed: str, now: float) -> Shift:
    """Who the schedule puts on call at `now`: the feed's event then, else the rotation, else a gap."""
    if feed:
        around = [s for s in feed_shifts(team, feed, now - HORIZON, now + HORIZON) if s.start <= now < s.end]
        if around:
            # Overlapping events: the one that began last is the more specific (a swap over a series).
            latest = max(around, key=lambda s: s.start)
            return latest
    if team.rotation is not None:
        return rotation_shift(team, team.rotation, now)
    nearby = feed_shifts(team, feed, now - HORIZON, now + HORIZON) if feed else []
    began = max((s.end for s in nearby if s.end <= now), default=now)
    return Shift(None, began, min((s.start for s in nearby if s.start > now), default=now + HORIZON))


def next_shift(team: Team, feed: str, current: Shift) -> Shift | None:
    """The shift after `current`, within the horizon; None when the schedule says nothing."""
    if current.end >= current.start + HORIZON and current.phone is None:
        return None
    following = shift_at(team, feed, current.end)
    for _ in range(8):  # the next shift of someone else (a feed may split one person's week)
        if following.phone != current.phone or following.end >= current.end + HORIZON:
            break
        following = shift_at(team, feed, following.end)
    return following


def gaps(team: Team, feed: str, start: float, end: float) -> list[Shift]:
    """Stretches between `start` and `end` with nobody on call (only a feed without a rotation has them)."""
    if team.rotation is not None or not feed:
        return []
    found, at = [], start
    while at < end:
        shift = shift_at(team, feed, at)
        if shift.phone is None:
            found.append(shift)
        if shift.end <= at:
            break
        at = shift.end
    return found


@functools.lru_cache(maxsize=16)
def _calendar(feed: str) -> icalendar.Calendar:
    """A feed parsed once: every page, reminder and escalation step asks who is on call."""
    return icalendar.Calendar.from_ical(feed)


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _instant(prop: object, team: Team) -> float | None:
    value = getattr(prop, "dt", None)
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=team.zone)).timestamp()
    if isinstance(value, date):  # an all-day event: midnight in the team's zone
        return datetime(value.year, value.month, value.day, tzinfo=team.zone).timestamp()
    return None


def _named(team: Team, event: icalendar.cal.Component) -> Member | None:
    """The member an event is about: a number (any formatting) or a name in its summary, attendee or text."""
    text = " ".join(str(event.get(key, "")) for key in ("SUMMARY", "DESCRIPTION", "LOCATION"))
    attendees = event.get("ATTENDEE") or []
    attendees = attendees if isinstance(attendees, list) else [attendees]
    text += " " + " ".join(str(a) for a in attendees)
    digits = _DIGITS.sub("", text)
    for member in team.rota:
        if member.phone[1:] in digits:
            return member
    lowered, named = text.lower(), []
    for member in team.rota:
        found = re.search(rf"\b{re.escape(member.name.lower())}\b", lowered) if member.name else None
        if found:
            named.append((found.start(), member))
    # "Bob (swapped with Alice)": the name that comes first is the one on call.
    return min(named, key=lambda pair: pair[0])[1] if named else None
