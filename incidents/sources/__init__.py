"""What every alert source's parser returns: `Incoming` events, or a `PayloadError`.

Parsers are pure: no Flask, no store. Each takes the decoded JSON of one source's webhook and
returns `Incoming` records, or raises `PayloadError` with a sentence the sender can act on (it
becomes a 400). One module per source: `alertmanager`, `datadog`.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

# Labels that name "where" an alert is, best first; the SMS lists these values.
PLACE_LABELS = ("host", "hostname", "instance", "pod", "node", "container", "service", "job")
_FRACTION = re.compile(r"(\.\d{6})\d+")


class Source(StrEnum):
    """Where an alert comes from: Operator's own rules, a webhook, or a silent heartbeat."""

    RULE = "rule"
    ALERTMANAGER = "alertmanager"
    DATADOG = "datadog"
    HEARTBEAT = "heartbeat"


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


def parse_time(value: Any) -> float | None:
    """RFC 3339 ("2024-05-01T10:00:00.123456789Z") or epoch seconds/ms -> epoch seconds."""
    if value in (None, ""):
        return None
    if isinstance(value, int | float) or (isinstance(value, str) and value.strip().isdigit()):
        number = float(value)
        return number / 1000 if number > 1e11 else number
    if not isinstance(value, str):
        return None
    text = _FRACTION.sub(r"\1", value.strip()).replace("Z", "+00:00").replace("z", "+00:00")
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        return None
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


def text_of(value: Any, limit: int) -> str:
    """A storable string: NUL removed (PostgreSQL refuses it), cut to the column's size."""
    return ("" if value is None else str(value)).replace("\x00", "")[:limit]


def strings(value: Any, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise PayloadError(f"{what} must be an object of strings")
    return {text_of(k, 100): text_of(v, 500) for k, v in value.items()}
