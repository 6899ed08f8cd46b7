"""Operator's own alert source: the rules of operator.yml's `rules:` section, validated.

alerting.py evaluates them; this module only turns the YAML into `Rule`s.

Each problem is reported as a ConfigError naming the rule and what is wrong with it.
"""

from __future__ import annotations

import operator
import re
import string
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from config import E164, ConfigError, Settings
from core.timeutil import parse_duration

OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}
FIELDS = ("name", "value", "threshold", "duration", "op", "severity", "monitor", "query")
KEYS = (
    "name", "monitor", "query", "op", "threshold", "for", "repeat", "severity", "recipients", "message",
    "no_data", "error_notice_after", "team",
)  # fmt: skip
# Long enough that a backend restart or a deploy does not text anyone, short enough to matter.
ERROR_NOTICE_AFTER = 300.0
DEFAULT_MESSAGE = "{name} {value} {op} {threshold} for {duration}"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
# Short names people also use for the registry's monitors.
ALIASES = {
    "sys": "system",
    "prom": "prometheus",
    "db": "database",
    "nr": "newrelic",
    "custom_api": "api",
    "logs": "logfiles",
}


def number(value: float) -> str:
    """91.2345 -> "91.2", 1234.5 -> "1235", 0.01234 -> "0.0123": short enough for a text."""
    if value != value or value in (float("inf"), float("-inf")):
        return str(value)
    magnitude = abs(value)
    if magnitude >= 100 or value == int(value):
        return f"{value:.0f}"
    if magnitude >= 1:
        return f"{value:.1f}".rstrip("0").rstrip(".")
    return f"{value:.3g}"


class Num(float):
    """A float that prints the short way unless the template asks for a format ({value:.2f})."""

    def __str__(self) -> str:
        return number(self)

    def __format__(self, spec: str) -> str:
        return float.__format__(self, spec) if spec else number(self)


class NoData(StrEnum):
    """What an empty result means: Prometheus's answer (not breached), a breach, or no change."""

    OK = "ok"
    ALERT = "alert"
    KEEP = "keep"


@dataclass(frozen=True)
class Rule:
    name: str
    monitor: str
    query: str
    op: str
    threshold: float
    for_: float
    repeat: float
    severity: str
    recipients: tuple[str, ...]
    message: str
    no_data: NoData = NoData.OK
    error_notice_after: float = ERROR_NOTICE_AFTER
    # An on-call team of the file's `teams:` (then `recipients` is empty: its on-call is paged).
    team: str = ""

    def breached(self, value: float) -> bool:
        return OPS[self.op](value, self.threshold)

    def render(self, value: float | None, duration: str) -> str:
        if value is None:  # a template written for numbers reads badly around "no data"
            return f"{self.name}: no data for {duration}"
        return self.message.format(
            name=self.name,
            value=Num(value),
            threshold=Num(self.threshold),
            duration=duration,
            op=self.op,
            severity=self.severity,
            monitor=self.monitor,
            query=self.query,
        )


def parse_rules(
    section: Any,
    settings: Settings,
    monitors: Iterable[str],
    known: Iterable[str] = (),
    numeric: Iterable[str] | None = None,
) -> list[Rule]:
    """Rules from the parsed YAML `rules:` list.

    `monitors` are the configured monitors by name, `known` every registered one, and `numeric`
    those that give a number to compare (all of them when None).
    """
    if section is None:
        return []
    if not isinstance(section, list):
        raise ConfigError("rules: must be a list of rules (each starting with '- name: ...')")
    configured, everything = set(monitors), set(known) | set(monitors)
    numbers = everything if numeric is None else set(numeric)
    teams = settings.file.get("teams")
    team_names = {str(name) for name in teams} if isinstance(teams, Mapping) else set()
    # With teams, a rule naming nobody is routed like any alert (the default team, else the pager numbers).
    default_recipients = () if team_names else tuple(settings.pager_numbers)
    rules: list[Rule] = []
    for index, item in enumerate(section, start=1):
        label = f"rule #{index}"
        if isinstance(item, Mapping) and isinstance(item.get("name"), str):
            label = f"rule {item['name']!r}"
        try:
            rule = _parse_one(item, configured, everything, numbers, default_recipients, team_names)
        except ConfigError as exc:
            raise ConfigError(f"rules: {label}: {exc}") from None
        if any(r.name == rule.name for r in rules):
            raise ConfigError(f"rules: {label}: the name is used by another rule")
        rules.append(rule)
    return rules


def _parse_one(
    item: Any,
    configured: set[str],
    everything: set[str],
    numbers: set[str],
    default_recipients: tuple,
    team_names: set[str],
) -> Rule:
    if not isinstance(item, Mapping):
        raise ConfigError("must be a mapping of keys like name, monitor, query, op, threshold")
    unknown = sorted(str(k) for k in item if k not in KEYS)
    if unknown:
        raise ConfigError(f"unknown key(s) {', '.join(unknown)}; known: {', '.join(KEYS)}")
    for key in ("name", "monitor", "query", "threshold"):
        if item.get(key) in (None, ""):
            raise ConfigError(f"'{key}' is required")
    name = item["name"]
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError("'name' must be 1-64 letters, digits, '_', '.', ':' or '-'")
    monitor = ALIASES.get(str(item["monitor"]), str(item["monitor"]))
    if monitor not in configured:
        if monitor in everything:
            raise ConfigError(f"monitor {monitor!r} is not configured (set its URL or credentials)")
        raise ConfigError(f"unknown monitor {monitor!r}; configured: {', '.join(sorted(configured))}")
    if monitor not in numbers:
        raise ConfigError(
            f"monitor {monitor!r} gives no number to compare; rules can use {', '.join(sorted(numbers))}"
        )
    op = str(item.get("op", ">")).strip()
    if op not in OPS:
        raise ConfigError(f"'op' must be one of {' '.join(OPS)}, not {op!r}")
    threshold = item["threshold"]
    if isinstance(threshold, bool) or not isinstance(threshold, int | float):
        raise ConfigError(f"'threshold' must be a number, not {threshold!r}")
    team = item.get("team") or ""
    if team and "recipients" in item:
        raise ConfigError("give 'team' or 'recipients', not both")
    if team and str(team) not in team_names:
        known = ", ".join(sorted(team_names)) or "none (add a teams: section)"
        raise ConfigError(f"unknown team {str(team)[:32]!r}; teams: {known}")
    if not team and "recipients" not in item and "default" in team_names:
        team = "default"  # as a webhook alert matching no team
    recipients = item.get("recipients", () if team else default_recipients)
    if isinstance(recipients, str):
        recipients = [p.strip() for p in recipients.split(",") if p.strip()]
    if not isinstance(recipients, list | tuple) or not (recipients or team or team_names):
        raise ConfigError(
            "no recipients: set 'recipients', ALERT_RECIPIENTS or responder/admin AUTHORIZED_NUMBERS"
        )
    for phone in recipients:
        if not isinstance(phone, str) or not E164.match(phone):
            raise ConfigError(f"recipient {phone!r} is not an E.164 number like +15550100 (quote it in YAML)")
    message = item.get("message", DEFAULT_MESSAGE)
    no_data = str(item.get("no_data", NoData.OK)).strip().lower()
    if no_data not in tuple(NoData):
        raise ConfigError(f"'no_data' must be ok, alert or keep, not {item['no_data']!r}")
    rule = Rule(
        name=name,
        monitor=monitor,
        query=str(item["query"]),
        op=op,
        threshold=float(threshold),
        for_=_duration(item, "for"),
        repeat=_duration(item, "repeat"),
        severity=str(item.get("severity", "page")),
        recipients=tuple(recipients),
        message=message if isinstance(message, str) else "",
        no_data=NoData(no_data),
        error_notice_after=_duration(item, "error_notice_after", ERROR_NOTICE_AFTER),
        team=str(team),
    )
    _check_template(rule)
    return rule


def _duration(item: Mapping, key: str, default: float = 0) -> float:
    value = item.get(key, default)
    try:
        return parse_duration(str(value))
    except ValueError:
        raise ConfigError(f"'{key}' must be a duration like 30s, 5m or 1h, not {value!r}") from None


def _check_template(rule: Rule) -> None:
    if not rule.message.strip():
        raise ConfigError("'message' must be a non-empty text")
    try:
        fields = {f for _, f, _, _ in string.Formatter().parse(rule.message) if f is not None}
        bad = sorted(f for f in fields if f.split(".")[0].split("[")[0] not in FIELDS)
        if bad:
            raise ConfigError(
                f"'message' uses unknown field(s) {{{'}, {'.join(bad)}}}; known: {', '.join(FIELDS)}"
            )
        rule.render(1.0, "5m")
    except (ValueError, KeyError, IndexError, AttributeError, TypeError) as exc:
        raise ConfigError(f"'message' is not a valid template: {exc}") from None
