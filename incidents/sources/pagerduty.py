"""PagerDuty Events API v2 (alert and change events) -> `Incoming` events, as PagerDuty documents them.

An alert event is `trigger`, `acknowledge` or `resolve`, keyed by `dedup_key` within one
integration (PagerDuty's routing key). Every mistake is collected, so the 400 lists them all as
PagerDuty's own `errors` do.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from incidents.sources import (
    Incoming,
    PayloadError,
    Source,
    Status,
    bounded,
    parse_time,
    place_of,
    text_of,
)

ROUTING_KEY_LENGTH = 32
DEDUP_KEY_LIMIT = 255
SUMMARY_LIMIT = 1024
SEVERITIES = ("critical", "error", "warning", "info")
MAX_BODY = 512 * 1024  # PagerDuty refuses larger events with 413


class Action(StrEnum):
    TRIGGER = "trigger"
    ACKNOWLEDGE = "acknowledge"
    RESOLVE = "resolve"


class EventInvalid(PayloadError):
    """The event breaks PagerDuty's rules; `errors` lists each broken rule."""

    def __init__(self, errors: list[str]):
        super().__init__("; ".join(errors))
        self.errors = errors


@dataclass(frozen=True)
class Event:
    """One alert event: what to do, to which dedup key, and the `Incoming` of a trigger or resolve."""

    action: Action
    dedup_key: str
    incoming: Incoming | None


@dataclass(frozen=True)
class Change:
    """One change event: recorded, never paged."""

    summary: str
    source: str
    timestamp: float | None


def routing_key(payload: Any) -> str:
    """The event's `routing_key` (the integration's secret), or "" when it has none."""
    key = payload.get("routing_key") if isinstance(payload, dict) else None
    return key if isinstance(key, str) else ""


def parse_event(payload: Any, integration: str, new_key: str, nonce: str) -> Event:
    """An Events API v2 alert event; `new_key` is the dedup key of a trigger without one.

    `nonce` tells this delivery apart: a later trigger of a resolved dedup key opens a new alert,
    as PagerDuty's does, instead of being taken for a repeat of the first.
    """
    if not isinstance(payload, dict):
        raise EventInvalid(["Event object must be a JSON object"])
    errors: list[str] = []
    action = payload.get("event_action")
    if action not in tuple(Action):
        errors.append("'event_action' must be one of trigger, acknowledge or resolve")
    dedup = payload.get("dedup_key")
    if dedup is not None and not isinstance(dedup, str):
        errors.append("'dedup_key' must be a string")
        dedup = None
    elif isinstance(dedup, str) and len(dedup) > DEDUP_KEY_LIMIT:
        errors.append(f"'dedup_key' must be at most {DEDUP_KEY_LIMIT} characters")
    if action in (Action.ACKNOWLEDGE, Action.RESOLVE) and not dedup:
        errors.append(f"'dedup_key' is required for {action} events")
    if action != Action.TRIGGER:
        if errors:
            raise EventInvalid(errors)
        key = text_of(dedup, DEDUP_KEY_LIMIT)
        if action == Action.ACKNOWLEDGE:
            return Event(Action.ACKNOWLEDGE, key, None)
        resolved = Incoming(
            source=Source.PAGERDUTY,
            event_key=bounded(f"pd:{integration}:{key}:resolve:{nonce}"),
            record_key=bounded(f"{integration}:{key}"),
            status=Status.RESOLVED,
            name="alert",
        )
        return Event(Action.RESOLVE, key, resolved)
    details = payload.get("payload")
    if not isinstance(details, dict):
        raise EventInvalid([*errors, "'payload' is required and must be an object"])
    summary = _required(details, "summary", errors)
    if len(summary) > SUMMARY_LIMIT:
        errors.append(f"'payload.summary' must be at most {SUMMARY_LIMIT} characters")
    where = _required(details, "source", errors)
    severity = details.get("severity")
    if severity not in SEVERITIES:
        errors.append("'payload.severity' must be one of critical, error, warning or info")
    labels: dict[str, str] = {}
    for name in ("component", "group", "class"):
        if details.get(name) is not None and not isinstance(details.get(name), str):
            errors.append(f"'payload.{name}' must be a string")
    started_at = _timestamp(details.get("timestamp"), errors)
    kept = {
        "custom_details": details.get("custom_details"),
        "links": payload.get("links"),
        "images": payload.get("images"),
    }
    for name, value in kept.items():
        expected = dict if name == "custom_details" else list
        if value is not None and not isinstance(value, expected):
            errors.append(f"'{name}' must be {'an object' if expected is dict else 'a list'}")
    if errors:
        raise EventInvalid(errors)
    key = text_of(dedup, DEDUP_KEY_LIMIT) or new_key
    labels["source"] = text_of(where, 500)
    for name in ("component", "group", "class"):
        if details.get(name):
            labels[name] = text_of(details[name], 500)
    for name, value in kept.items():
        if value:
            labels[name] = json.dumps(value, sort_keys=True, ensure_ascii=False)[:2000]
    incoming = Incoming(
        source=Source.PAGERDUTY,
        event_key=bounded(f"pd:{integration}:{key}:trigger:{nonce}"),
        record_key=bounded(f"{integration}:{key}"),
        status=Status.FIRING,
        name=summary[:200],
        summary=summary,
        severity=str(severity),
        labels=labels,
        url=_first_link(payload) or text_of(payload.get("client_url"), 2000, "client_url") or None,
        group_key=key,
        started_at=started_at,
        place=place_of({"host": labels["source"]}),
    )
    return Event(Action.TRIGGER, key, incoming)


def parse_change(payload: Any) -> Change:
    """A change event (`POST /v2/change/enqueue`): `payload.summary` required."""
    if not isinstance(payload, dict) or not isinstance(payload.get("payload"), dict):
        raise EventInvalid(["'payload' is required and must be an object"])
    details = payload["payload"]
    errors: list[str] = []
    summary = _required(details, "summary", errors)
    if len(summary) > SUMMARY_LIMIT:
        errors.append(f"'payload.summary' must be at most {SUMMARY_LIMIT} characters")
    source = details.get("source")
    if source is not None and not isinstance(source, str):
        errors.append("'payload.source' must be a string")
    timestamp = _timestamp(details.get("timestamp"), errors)
    if errors:
        raise EventInvalid(errors)
    return Change(summary, text_of(source, 500), timestamp)


def _required(details: dict[str, Any], name: str, errors: list[str]) -> str:
    value = details.get(name)
    if not isinstance(value, str) or not value.strip():
        errors.append(f"'payload.{name}' is missing or blank")
        return ""
    return text_of(value, len(value))  # one line: a sender's newline must not start a line of a page


def _timestamp(value: Any, errors: list[str]) -> float | None:
    try:
        return parse_time(value, "'payload.timestamp'")
    except PayloadError as exc:
        errors.append(str(exc))
        return None


def _first_link(payload: dict[str, Any]) -> str:
    for link in payload.get("links") or ():
        if isinstance(link, dict) and isinstance(link.get("href"), str):
            return link["href"][:2000]
    return ""
