"""What every alert source's parser returns: `Incoming` events, or a `PayloadError`.

Parsers are pure: no Flask, no store. Each takes the decoded JSON of one source's webhook and
returns `Incoming` records, or raises `PayloadError` with a sentence the sender can act on (it
becomes a 400). One module per source: `alertmanager`, `datadog`, `grafana`, `pagerduty`, `opsgenie`,
`generic`.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from itertools import accumulate
from typing import Any

from conversation import composer

# Labels that name "where" an alert is, best first; the SMS lists these values.
PLACE_LABELS = ("host", "hostname", "instance", "pod", "node", "container", "service", "job")
_FRACTION = re.compile(r"(\.\d{6})\d+")
_EPOCH = re.compile(r"\d{1,16}(\.\d{1,9})?", re.ASCII)
# The nesting check in three linear passes: escapes out, then strings, then all but brackets.
# (One pattern for a whole string with its escapes retried from every quote: quadratic.)
_ESCAPE = re.compile(r"\\.", re.DOTALL)
_STRING = re.compile(r'"[^"]*"')
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}
# Set by an integration with `team:` on each of its alerts: that team takes them (oncall.routing).
TEAM_LABEL = "integration_team"
# Alertmanager's payload nests 4 levels, Datadog's 2-3: 32 leaves room for custom payloads.
MAX_DEPTH = 32
# Epoch milliseconds have 13 digits and ids fit in 64 bits (19 digits).
MAX_DIGITS = 19
# Clocks disagree by seconds; a source a day ahead of ours is broken.
MAX_AHEAD = 86400.0


class Source(StrEnum):
    """Where an alert comes from: Operator's own rules, a webhook, or a silent heartbeat."""

    RULE = "rule"
    ALERTMANAGER = "alertmanager"
    DATADOG = "datadog"
    HEARTBEAT = "heartbeat"
    # The vendor APIs Operator answers as (integrations: in operator.yml).
    PAGERDUTY = "pagerduty"
    OPSGENIE = "opsgenie"
    GRAFANA = "grafana"
    GENERIC = "generic"


class Status(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


class PayloadError(ValueError):
    """The body is JSON but not an alert payload Operator understands."""


@dataclass(frozen=True)
class Incoming:
    """One alert event as a source reported it."""

    source: Source
    # What makes two deliveries the same event (fingerprint+status+startsAt, id+cycle+transition).
    event_key: str
    # Identity of the incident record: Alertmanager group, Datadog alert id (+ scope).
    record_key: str
    status: Status
    name: str
    summary: str = ""
    severity: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    url: str | None = None
    group_key: str | None = None
    started_at: float | None = None
    ended_at: float | None = None  # when a resolved event says the problem stopped
    place: str = ""  # web-1, for "FIRING 3 HighCPU web-1,web-2"
    # Datadog: FIRING | WARN | NO DATA | RENOTIFY; Alertmanager: FIRING.
    transition: str = "FIRING"
    truncated: int = 0  # alerts Alertmanager left out of this group's payload
    group_status: str = ""  # the notification's own status (firing while any alert fires)


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:40]


def bounded(key: str) -> str:
    """Keys fit the 255-character unique column; long ones are hashed."""
    return key if len(key) <= 200 else key[:100] + "#" + digest(key)


def parse_time(value: Any, what: str = "time", now: float | None = None) -> float | None:
    """RFC 3339 ("2024-05-01T10:00:00.123456789Z") or epoch seconds/ms -> epoch seconds.

    None when absent (or Go's zero time); PayloadError for anything that is not a time between
    the epoch and a day ahead of our clock: a stored absurd time breaks every reply showing an age.
    """
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise PayloadError(f"{what} must be an RFC 3339 time or epoch seconds")
    text = value.strip() if isinstance(value, str) else ""
    if isinstance(value, str) and not _EPOCH.fullmatch(text):
        number = _rfc3339(text, what)
        if number is None:
            return None
    else:
        number = float(value)
        if number > 1e11:  # milliseconds (1e11 seconds is the year 5138)
            number /= 1000
    latest = (time.time() if now is None else now) + MAX_AHEAD
    if not 0 <= number <= latest:
        raise PayloadError(f"{what} is not a plausible time (before 1970 or more than a day ahead)")
    return number


def _rfc3339(text: str, what: str) -> float | None:
    if len(text) > 64:
        raise PayloadError(f"{what} must be an RFC 3339 time or epoch seconds")
    text = _FRACTION.sub(r"\1", text).replace("Z", "+00:00").replace("z", "+00:00")
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        raise PayloadError(f"{what} must be an RFC 3339 time or epoch seconds") from None
    if stamp.year <= 1:  # Go's zero time: "no end yet"
        return None
    return stamp.timestamp()


def place_of(labels: dict[str, str], common: dict[str, str] | None = None) -> str:
    """Where an alert is ("web-1:9100" -> "web-1"), preferring labels its group does not share."""
    own = {k: v for k, v in labels.items() if common is None or common.get(k) != v}
    for candidates in (own, labels):
        for name in PLACE_LABELS:
            value = candidates.get(name)
            if value:
                host = value.split("://", 1)[-1]
                return re.sub(r":\d+$", "", host.rstrip("/"))[:40]
        if common is not None and candidates is own:
            # No host-like label tells the group's alerts apart: the first label that does.
            rest = sorted((k, v) for k, v in own.items() if k not in ("alertname", "severity"))
            if rest:
                return rest[0][1][:40]
    return ""


def text_of(value: Any, limit: int, what: str = "a text field") -> str:
    """A storable one-line string: NUL removed (PostgreSQL refuses it), every other control,
    separator or format character a space (composer.one_line: a sender's newline must not
    start a line of its own in a page), cut to the column's size.

    Numbers are written out (a hand-made payload's `"alert_id": 12`); objects, lists and booleans
    in a text field are a broken sender, refused rather than stored as Python's repr.
    """
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise PayloadError(f"{what} must be text")
    return composer.one_line(str(value).replace("\x00", ""))[:limit]


def strings(value: Any, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise PayloadError(f"{what} must be an object of strings")
    return {text_of(k, 100): text_of(v, 500) for k, v in value.items()}


def decode(raw: bytes) -> Any:
    """A webhook body as JSON, strictly; PayloadError for anything no alert source sends.

    Python's json accepts NaN and Infinity, turns 1e400 into inf, builds 400-digit integers and
    recurses once per nesting level: each of those reached the store or crashed the request.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise PayloadError("body is not valid JSON (not UTF-8)") from None
    if _too_deep(text):
        raise PayloadError(f"body nests deeper than {MAX_DEPTH} levels")
    try:
        value = json.loads(text, parse_constant=_constant, parse_int=_integer, parse_float=_real)
    except PayloadError:
        raise
    except ValueError as exc:
        raise PayloadError(f"body is not valid JSON ({exc.__class__.__name__})") from None
    try:
        # A lone surrogate ("\ud800") decodes to a str that no database encoding can hold.
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise PayloadError("body has a lone UTF-16 surrogate escape (\\ud800-\\udfff)") from None
    return value


def _too_deep(text: str) -> bool:
    """More than MAX_DEPTH levels of [ and { outside strings, found before json recurses into them.

    Linear in the body: with every escape gone a string is a quote, anything but a quote, a
    quote; each pass moves forward only, and a quote that never closes is scanned past once.
    """
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", _ESCAPE.sub("", text)))
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0) > MAX_DEPTH


def _constant(name: str) -> Any:
    raise PayloadError(f"{name} is not a JSON number")


def _integer(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_DIGITS:
        raise PayloadError(f"a number in the body has more than {MAX_DIGITS} digits")
    return int(digits)


def _real(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise PayloadError(f"the number {text[:24]} is out of range")
    return number
