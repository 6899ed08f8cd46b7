"""The file's `teams:` section as frozen dataclasses; a mistake is one ConfigError naming the team and key.

Read once per Settings (`of(settings)`): the app and the worker call it at start, so a bad team
stops start-up like any other bad setting. An `ical:` file is read then; a URL is the worker's
(oncall.feeds fetches it into the store).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from config import E164, PAGE_ROLES, ROLES, ConfigError, Settings, keyed
from core.patterns import Pattern, PatternError, linear
from core.timeutil import parse_duration

DEFAULT_TEAM = "default"
MAX_PERIOD = 365 * 86400.0
TEAM_KEYS = ("members", "rotation", "ical", "zone", "match", "escalation")
STEP_KEYS = ("after", "notify", "via")
NOTIFY = ("oncall", "next", "team")
VIA = ("sms", "call")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
_ZONED = re.compile(r"^(?P<when>\S+?)(?:\s+|\[)(?P<zone>[A-Za-z_]+(?:/[A-Za-z0-9_+-]+)*)\]?$")


@dataclass(frozen=True)
class Member:
    phone: str
    role: str = "responder"
    name: str = ""

    @property
    def pageable(self) -> bool:
        return self.role in PAGE_ROLES


@dataclass(frozen=True)
class Rotation:
    """Handoffs at `start` plus whole periods: whole days are counted on the wall clock of `start`'s zone."""

    start: datetime
    every: float
    days: int  # `every` in whole days (0 when it is not), so a 1d rotation keeps 09:00 across DST


@dataclass(frozen=True)
class Matcher:
    label: str
    value: str
    regex: Pattern | None = None  # RE2: linear in the label's length, whatever the pattern

    def matches(self, labels: Mapping[str, str]) -> bool:
        found = labels.get(self.label)
        if found is None:
            return False
        return bool(self.regex.fullmatch(found)) if self.regex else found == self.value


@dataclass(frozen=True)
class Step:
    after: float
    notify: str  # oncall | next | team | numbers
    numbers: tuple[str, ...] = ()
    via: str = "sms"


@dataclass(frozen=True)
class Policy:
    steps: tuple[Step, ...]
    repeat: int = 0

    @property
    def round_length(self) -> float:
        """A repeat starts over after the last step, keeping the last step's spacing."""
        last = self.steps[-1].after
        before = self.steps[-2].after if len(self.steps) > 1 else 0.0
        return last + (last - before)


@dataclass(frozen=True)
class Team:
    name: str
    members: tuple[Member, ...]
    zone: tzinfo
    rotation: Rotation | None = None
    ical_url: str = ""
    ical_text: str = ""
    match: tuple[Matcher, ...] = ()
    escalation: Policy | None = None

    @property
    def rota(self) -> tuple[Member, ...]:
        """Who takes turns: the members who are paged (viewers only ask)."""
        return tuple(m for m in self.members if m.pageable)

    @property
    def admins(self) -> tuple[str, ...]:
        return tuple(m.phone for m in self.members if m.role == "admin")

    def member(self, phone: str) -> Member | None:
        return next((m for m in self.members if m.phone == phone), None)


_cache: dict[int, tuple[Any, dict[str, Team]]] = {}


def of(settings: Settings) -> dict[str, Team]:
    """The configured teams by name (empty when the file has no `teams:`), parsed once per file."""
    section = settings.file.get("teams")
    cached = _cache.get(id(settings.file))
    if cached is not None and cached[0] is settings.file:
        return cached[1]
    teams = parse_teams(section)
    _cache[id(settings.file)] = (settings.file, teams)
    return teams


def parse_teams(section: Any) -> dict[str, Team]:
    if section is None:
        return {}
    if not isinstance(section, Mapping):
        raise ConfigError("teams: must be a mapping of team names to their members, rotation and escalation")
    teams: dict[str, Team] = {}
    for name, item in section.items():
        if not isinstance(name, str) or not _NAME.match(name):
            raise ConfigError(
                f"teams: {str(name)[:40]!r}: a team name is 1-32 lower-case letters, digits, '_', '-'"
            )
        try:
            teams[name] = _team(name, item)
        except ConfigError as exc:
            raise ConfigError(f"teams: {name}: {exc}") from None
    return teams


def _team(name: str, item: Any) -> Team:
    item = keyed(item, TEAM_KEYS, "members, rotation, match, escalation")
    members = _members(item.get("members"))
    rotation = _rotation(item["rotation"]) if item.get("rotation") is not None else None
    zone = _zone(str(item["zone"])) if item.get("zone") else (rotation.start.tzinfo if rotation else None)
    ical_url, ical_text = _ical(item.get("ical"))
    if rotation is None and not (ical_url or ical_text):
        raise ConfigError("needs a 'rotation' (every, start) or an 'ical' feed")
    if not any(m.pageable for m in members):
        raise ConfigError("'members' needs at least one responder or admin")
    return Team(
        name=name,
        members=members,
        zone=zone or ZoneInfo("UTC"),
        rotation=rotation,
        ical_url=ical_url,
        ical_text=ical_text,
        match=_matchers(item.get("match")),
        escalation=_policy(item.get("escalation")),
    )


def _members(value: Any) -> tuple[Member, ...]:
    if not isinstance(value, list) or not value:
        raise ConfigError("'members' must be a list of numbers like '+15550100:admin' (quote them in YAML)")
    found: list[Member] = []
    for entry in value:
        name = ""
        if isinstance(entry, Mapping):
            phone, role, name = (
                str(entry.get("phone", "")),
                str(entry.get("role", "responder")),
                str(entry.get("name", "")),
            )
        elif isinstance(entry, str):
            phone, _, role = entry.partition(":")
        else:
            raise ConfigError(f"member {entry!r} must be a number like '+15550100:admin' (quote it in YAML)")
        phone, role = phone.strip(), (role.strip().lower() or "responder")
        if not E164.match(phone):
            raise ConfigError(
                f"member {phone[:20]!r} is not an E.164 number like +15550100 (quote it in YAML)"
            )
        if role not in ROLES:
            raise ConfigError(f"member {phone[:5]}***: role {role!r} must be one of {', '.join(ROLES)}")
        if any(m.phone == phone for m in found):
            raise ConfigError(f"member {phone[:5]}*** is listed twice")
        found.append(Member(phone, role, name.strip()[:40]))
    return tuple(found)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a folder of zones, like "Europe"
        raise ConfigError(f"unknown time zone {name[:40]!r} (use a name like Europe/Berlin)") from None


def parse_start(text: str) -> datetime:
    """'2026-12-07T09:00+01:00', '2026-12-07T09:00 Europe/Berlin' or '...T09:00[Europe/Berlin]'."""
    text = text.strip()
    zoned = _ZONED.match(text)
    when, zone = (zoned["when"], _zone(zoned["zone"])) if zoned else (text, None)
    try:
        start = datetime.fromisoformat(when)
    except ValueError:
        raise ConfigError(
            f"rotation 'start' must be ISO-8601 like 2026-12-07T09:00 Europe/Berlin, not {text[:40]!r}"
        ) from None
    if zone is not None:
        if start.tzinfo is not None:
            raise ConfigError("rotation 'start' has both an offset and a zone name; give one")
        return start.replace(tzinfo=zone)
    if start.tzinfo is None:
        raise ConfigError("rotation 'start' needs an offset (+01:00) or a zone name (Europe/Berlin)")
    return start


def _rotation(value: Any) -> Rotation:
    if not isinstance(value, Mapping) or set(value) - {"every", "start"}:
        raise ConfigError("'rotation' must be a mapping with 'every' (1d, 1w) and 'start'")
    start = value.get("start")
    if isinstance(start, date):
        start = start.isoformat()  # YAML reads an unquoted timestamp (or date) itself
    if not isinstance(start, str):
        raise ConfigError("rotation 'start' is required, e.g. 2026-12-07T09:00 Europe/Berlin")
    try:
        every = parse_duration(str(value.get("every", "")))
    except ValueError:
        every = 0.0
    if every <= 0:
        raise ConfigError(f"rotation 'every' must be a duration like 1d or 1w, not {value.get('every')!r}")
    if every > MAX_PERIOD:
        raise ConfigError(f"rotation 'every' must be at most 365d, not {value.get('every')!r}")
    begins = parse_start(start)
    if not 1970 < begins.year < 2200:
        raise ConfigError(f"rotation 'start' must be between 1971 and 2199, not {begins.year}")
    days = int(every // 86400) if every % 86400 == 0 else 0
    return Rotation(begins, every, days)


def _ical(value: Any) -> tuple[str, str]:
    if value in (None, ""):
        return "", ""
    if not isinstance(value, str):
        raise ConfigError("'ical' must be a file path or an http(s) URL")
    if value.startswith(("http://", "https://")):
        return value, ""
    try:
        with open(value, encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError(f"'ical': cannot read {value}: {reason}") from None
    if "BEGIN:VCALENDAR" not in text:
        raise ConfigError(f"'ical': {value} is not an iCalendar file (no BEGIN:VCALENDAR)")
    return "", text


def _matchers(value: Any) -> tuple[Matcher, ...]:
    if value is None:
        return ()
    if not isinstance(value, Mapping):
        raise ConfigError("'match' must be a mapping of labels, like team: payments or service: =~pay.*")
    found = []
    for label, wanted in value.items():
        text = str(wanted).strip()
        if text.startswith("=~"):
            try:
                found.append(Matcher(str(label), text, linear(text[2:].strip())))
            except PatternError as exc:
                raise ConfigError(
                    f"match {label}: {text[:60]!r} is not a regular expression RE2 accepts: {exc}"
                ) from None
        else:
            found.append(Matcher(str(label), text))
    return tuple(found)


def _policy(value: Any) -> Policy | None:
    if value is None:
        return None
    if isinstance(value, list):
        value = {"steps": value}
    if not isinstance(value, Mapping) or set(value) - {"steps", "repeat"}:
        raise ConfigError("'escalation' must be a mapping with 'steps' and an optional 'repeat'")
    steps = value.get("steps")
    if not isinstance(steps, list) or not steps:
        raise ConfigError("escalation 'steps' must be a list like '- {after: 10m, notify: next}'")
    parsed = tuple(_step(index, step) for index, step in enumerate(steps, start=1))
    for index, (before, step) in enumerate(zip(parsed, parsed[1:], strict=False), start=2):
        if step.after < before.after:
            raise ConfigError(
                f"escalation step {index}: 'after' counts from the page and must not go back in time"
            )
    repeat = value.get("repeat", 0)
    if isinstance(repeat, bool) or not isinstance(repeat, int) or not 0 <= repeat <= 10:
        raise ConfigError(f"escalation 'repeat' must be a whole number from 0 to 10, not {repeat!r}")
    policy = Policy(parsed, repeat)
    if repeat and policy.round_length <= 0:
        raise ConfigError("escalation 'repeat' needs a step with an 'after' above 0")
    return policy


def _step(index: int, item: Any) -> Step:
    where = f"escalation step {index}"
    if not isinstance(item, Mapping):
        raise ConfigError(f"{where} must be a mapping of after, notify, via")
    unknown = sorted(str(k) for k in item if k not in STEP_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(STEP_KEYS)}")
    try:
        after = parse_duration(str(item.get("after", 0)))
    except ValueError:
        raise ConfigError(
            f"{where}: 'after' must be a duration like 0, 10m or 1h, not {item.get('after')!r}"
        ) from None
    via = str(item.get("via", "sms")).strip().lower()
    if via not in VIA:
        raise ConfigError(f"{where}: 'via' must be sms or call, not {item.get('via')!r}")
    notify = item.get("notify", "oncall")
    if isinstance(notify, list):
        for phone in notify:
            if not isinstance(phone, str) or not E164.match(phone):
                raise ConfigError(
                    f"{where}: notify {str(phone)[:20]!r} is not an E.164 number (quote it in YAML)"
                )
        if not notify:
            raise ConfigError(f"{where}: 'notify' needs at least one number")
        return Step(after, "numbers", tuple(notify), via)
    if notify not in NOTIFY:
        raise ConfigError(
            f"{where}: 'notify' must be oncall, next, team or a list of numbers, not {notify!r}"
        )
    return Step(after, str(notify), (), via)
