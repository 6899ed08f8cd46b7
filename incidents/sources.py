"""Pure parsers for alert webhooks: Alertmanager (v4 payload) and Datadog (custom or default).

No Flask here: a parser takes the decoded JSON and returns `Incoming` records, or raises
`PayloadError` with a sentence the sender can act on (it becomes a 400).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

# Labels that name "where" an alert is, best first; the SMS lists these values.
PLACE_LABELS = ("host", "hostname", "instance", "pod", "node", "container", "service", "job")

# Datadog transitions that mean "this is (still) a problem", by how they read in an SMS.
_DD_FIRE = {"triggered": "FIRING", "re-triggered": "FIRING", "warn": "WARN", "re-warn": "WARN"}
_DD_TITLE_TAG = re.compile(r"^\s*\[([^\]]*)\]\s*")
_MENTION = re.compile(r"(?<!\S)@\S+")
_LINK = re.compile(r"\[+([^\]]*)\]+\([^)]*\)")
_FRACTION = re.compile(r"(\.\d{6})\d+")


class PayloadError(ValueError):
    """The body is JSON but not an alert payload Operator understands."""


@dataclass(frozen=True)
class Incoming:
    """One alert event as a source reported it."""

    source: str  # alertmanager | datadog
    # What makes two deliveries the same event (fingerprint+status+startsAt, id+cycle+transition).
    event_key: str
    # Identity of the incident record: Alertmanager group, Datadog alert id (+ scope).
    record_key: str
    status: str  # firing | resolved
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


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:40]


def _bounded(key: str) -> str:
    """Keys fit the 255-character unique column; long ones are hashed."""
    return key if len(key) <= 200 else key[:100] + "#" + _digest(key)


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


def _text(value: Any, limit: int) -> str:
    """A storable string: NUL removed (PostgreSQL refuses it), cut to the column's size."""
    return ("" if value is None else str(value)).replace("\x00", "")[:limit]


def _strings(value: Any, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise PayloadError(f"{what} must be an object of strings")
    return {_text(k, 100): _text(v, 500) for k, v in value.items()}


def parse_alertmanager(payload: Any) -> list[Incoming]:
    """Alerts of one Alertmanager notification (webhook payload version 4)."""
    if not isinstance(payload, dict):
        raise PayloadError("expected a JSON object (Alertmanager webhook payload)")
    alerts = payload.get("alerts")
    if not isinstance(alerts, list):
        raise PayloadError("'alerts' must be a list (Alertmanager webhook payload version 4)")
    common = _strings(payload.get("commonLabels"), "commonLabels")
    common_notes = _strings(payload.get("commonAnnotations"), "commonAnnotations")
    shared_summary = common_notes.get("summary") or common_notes.get("description") or ""
    group_labels = _strings(payload.get("groupLabels"), "groupLabels")
    group_key = _text(payload.get("groupKey"), 4000)
    truncated = payload.get("truncatedAlerts") or 0
    if not isinstance(truncated, int) or truncated < 0:
        raise PayloadError("'truncatedAlerts' must be a whole number")
    external = _text(payload.get("externalURL"), 2000) or None
    result = []
    for index, alert in enumerate(alerts):
        if not isinstance(alert, dict):
            raise PayloadError(f"alerts[{index}] must be an object")
        labels = _strings(alert.get("labels"), f"alerts[{index}].labels")
        annotations = _strings(alert.get("annotations"), f"alerts[{index}].annotations")
        status = alert.get("status") or payload.get("status")
        if status not in ("firing", "resolved"):
            raise PayloadError(f"alerts[{index}].status must be 'firing' or 'resolved'")
        fingerprint = _text(alert.get("fingerprint"), 100) or _digest(json.dumps(labels, sort_keys=True))
        starts = _text(alert.get("startsAt"), 64)
        # Without a groupKey (hand-made payloads) each alert is its own group.
        key = group_key or f"fingerprint:{fingerprint}"
        result.append(
            Incoming(
                source="alertmanager",
                event_key=_bounded(f"am:{fingerprint}:{status}:{starts}"),
                record_key=_bounded("group:" + _digest(key)),
                status=status,
                name=(labels.get("alertname") or common.get("alertname") or "alert")[:200],
                # One alert's summary ("CPU high on web-1") would mislead for a group of many.
                summary=shared_summary
                or (
                    (annotations.get("summary") or annotations.get("description") or "")
                    if len(alerts) == 1
                    else ""
                ),
                severity=labels.get("severity", "")[:32],
                # Matchers for a silence: what the whole group shares, so it silences the group.
                labels=common or group_labels or labels,
                url=_text(alert.get("generatorURL"), 2000) or external,
                group_key=key,
                started_at=parse_time(starts),
                ended_at=parse_time(alert.get("endsAt")) if status == "resolved" else None,
                place=place_of(labels, common),
                truncated=truncated,
                group_status=_text(payload.get("status"), 16),
            )
        )
    return result


def _dd_transition(text: str) -> tuple[str, str] | None:
    """Datadog transition text -> (status, SMS word); None for one that is not an alert state."""
    word = text.strip().lower().replace("_", " ")
    if "recover" in word:
        return "resolved", "RESOLVED"
    if "no data" in word or word == "nodata":
        return "firing", "NO DATA"
    if "renotify" in word:
        return "firing", "RENOTIFY"
    for prefix, label in _DD_FIRE.items():
        if word.startswith(prefix):
            return "firing", label
    return None


def _dd_tags(value: Any) -> dict[str, str]:
    """'env:prod,host:web-1,role' (or a list) -> {'env': 'prod', 'host': 'web-1', 'role': ''}."""
    parts = value if isinstance(value, list) else str(value or "").split(",")
    tags: dict[str, str] = {}
    for part in (_text(p, 300).strip() for p in parts[:100]):
        if part:
            name, _, tag_value = part.partition(":")
            tags[_text(name.strip(), 100)] = _text(tag_value.strip(), 200)
    return tags


def parse_datadog(payload: Any) -> Incoming | None:
    """One Datadog notification; None when its transition is not an alert state (ignored)."""
    if not isinstance(payload, dict):
        raise PayloadError("expected a JSON object (Datadog webhook payload)")
    if "alert_id" in payload or "transition" in payload:
        return _datadog_custom(payload)
    if "title" in payload:
        return _datadog_default(payload)
    raise PayloadError("expected the custom payload (alert_id, transition, ...) or Datadog's default")


def _clean(message: str) -> str:
    """A Datadog message as one plain line: no %%% fences, @mentions, links or footer."""
    message = message.replace("%%%", " ").split("- - -", 1)[0]
    message = _MENTION.sub(" ", message)
    message = _LINK.sub(r"\1", message)
    return " ".join(message.split())[:500]


def _strip_tags(title: str) -> tuple[list[str], str]:
    """'[P1] [Triggered on {host:a}] CPU high' -> (['P1', 'Triggered on {host:a}'], 'CPU high')."""
    tags = []
    while match := _DD_TITLE_TAG.match(title):
        tags.append(match.group(1))
        title = title[match.end() :]
    return tags, title


def _datadog_custom(payload: dict) -> Incoming | None:
    alert_id = _text(payload.get("alert_id"), 64).strip()
    transition = _text(payload.get("transition"), 64).strip()
    if not alert_id or not transition:
        raise PayloadError("'alert_id' and 'transition' are required (see README, Datadog set-up)")
    state = _dd_transition(transition)
    if state is None:
        return None
    status, word = state
    cycle = _text(payload.get("cycle_key") or payload.get("id"), 64).strip()
    scope = _text(payload.get("scope"), 200).strip()
    tags = _dd_tags(payload.get("tags"))
    when = parse_time(payload.get("date"))
    title = _strip_tags(_text(payload.get("title"), 1000))[1].strip() or f"Datadog alert {alert_id}"
    return Incoming(
        source="datadog",
        event_key=_bounded(f"dd:{alert_id}:{scope}:{cycle}:{transition.lower()}"),
        record_key=_bounded(f"{alert_id}:{scope}" if scope else alert_id),
        status=status,
        name=title[:200],
        summary=_clean(_text(payload.get("message") or payload.get("status"), 5000)),
        severity=_text(payload.get("priority"), 32),
        labels=tags,
        url=_text(payload.get("link"), 2000) or None,
        started_at=when,
        ended_at=when if status == "resolved" else None,
        place=place_of(tags) or scope[:40],
        transition=word,
    )


def _datadog_default(payload: dict) -> Incoming | None:
    """Datadog's default body: the state is only in the title ("[P1] [Triggered on {host:a}] X")."""
    tags, title = _strip_tags(_text(payload.get("title"), 1000))
    state, scope = None, ""
    for tag in tags:
        head, _, on = tag.partition(" on ")
        state = state or _dd_transition(head)
        scope = scope or on.strip("{} ")
    if state is None:
        return None
    status, word = state
    name = title.strip() or "Datadog alert"
    when = parse_time(payload.get("date") or payload.get("last_updated"))
    event_id = _text(payload.get("id"), 64).strip()
    # The default body has no alert id or cycle key: the event id identifies a delivery, and the
    # monitor title (without its state prefix) plus scope identifies the incident.
    event_key = (
        f"dd-event:{event_id}" if event_id else f"dd-title:{word}:{name}:{scope}:{payload.get('date')}"
    )
    return Incoming(
        source="datadog",
        event_key=_bounded(event_key),
        record_key=_bounded("title:" + _digest(f"{name}|{scope}")),
        status=status,
        name=name[:200],
        summary=_clean(_text(payload.get("body"), 5000)),
        labels=_dd_tags(scope),
        url=_text(payload.get("link"), 2000) or None,
        started_at=when,
        ended_at=when if status == "resolved" else None,
        place=place_of(_dd_tags(scope)) or scope[:40],
        transition=word,
    )
