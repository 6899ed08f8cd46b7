"""Opsgenie's Alert API (create, close, acknowledge, notes, message and description updates) -> events.

Bodies as Opsgenie documents them and Alertmanager's `opsgenie_configs` sends them. A refused
body raises `Unprocessable` with Opsgenie's per-field `errors` (its 422).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from incidents.sources import Incoming, PayloadError, Source, Status, bounded, place_of, text_of

MESSAGE_LIMIT = 130
ALIAS_LIMIT = 512
DESCRIPTION_LIMIT = 15000
NOTE_LIMIT = 25000
# Opsgenie's five priorities as Operator's severities (docs/alert-sources.md#opsgenie-alert-api).
PRIORITY_SEVERITY = {"P1": "critical", "P2": "critical", "P3": "error", "P4": "warning", "P5": "info"}
IDENTIFIER_TYPES = ("id", "alias", "tiny")


class Unprocessable(PayloadError):
    """Opsgenie's 422: `errors` maps each refused field to why."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


@dataclass(frozen=True)
class Action:
    """The body of a close, acknowledge or add-note request."""

    user: str = ""
    source: str = ""
    note: str = ""


def parse_alert(payload: Any, integration: str, new_alias: str, nonce: str) -> tuple[Incoming, str]:
    """A create-alert body -> its firing `Incoming` and its note ("" for none).

    `new_alias` is the alias of an alert created without one; `nonce` tells this delivery apart,
    so an alias created again after its close opens a new alert.
    """
    if not isinstance(payload, dict):
        raise Unprocessable({"body": "must be a JSON object"})
    errors: dict[str, str] = {}
    message = payload.get("message")
    if not isinstance(message, str) or not message.strip():
        errors["message"] = "Message can not be empty."
        message = ""
    message = text_of(message, len(message))
    alias = _string(payload, "alias", errors)
    if len(alias) > ALIAS_LIMIT:
        errors["alias"] = f"Alias can not be longer than {ALIAS_LIMIT} characters."
    priority = payload.get("priority") or "P3"
    if priority not in PRIORITY_SEVERITY:
        errors["priority"] = "Priority should be one of [P1, P2, P3, P4, P5]."
    texts = {
        name: _string(payload, name, errors) for name in ("description", "source", "entity", "user", "note")
    }
    tags = payload.get("tags")
    if tags is not None and not (isinstance(tags, list) and all(isinstance(t, str) for t in tags)):
        errors["tags"] = "Tags should be a list of strings."
    details = payload.get("details")
    if details is not None and not (
        isinstance(details, dict) and all(isinstance(v, str | int | float) for v in details.values())
    ):
        errors["details"] = "Details should be an object of strings."
    for name in ("responders", "visibleTo", "actions"):
        if payload.get(name) is not None and not isinstance(payload.get(name), list):
            errors[name] = f"{name} should be a list."
    if errors:
        raise Unprocessable(errors)
    key = alias or new_alias
    labels = {text_of(k, 100): text_of(v, 500) for k, v in (details or {}).items() if not isinstance(v, bool)}
    for name in ("source", "entity"):
        if texts[name]:
            labels[name] = texts[name][:500]
    if tags:
        labels["tags"] = text_of(",".join(tags), 500)
    for name in ("responders", "actions"):
        if payload.get(name):
            labels[name] = text_of(json.dumps(payload[name], sort_keys=True, ensure_ascii=False), 500)
    incoming = Incoming(
        source=Source.OPSGENIE,
        event_key=bounded(f"og:{integration}:{key}:create:{nonce}"),
        record_key=bounded(f"{integration}:{key}"),
        status=Status.FIRING,
        name=message[:MESSAGE_LIMIT],
        summary=texts["description"][:DESCRIPTION_LIMIT],
        severity=PRIORITY_SEVERITY[priority],
        labels=labels,
        group_key=key,
        place=place_of({"host": texts["entity"]} if texts["entity"] else labels),
    )
    return incoming, texts["note"][:NOTE_LIMIT]


def closed(integration: str, alias: str, nonce: str) -> Incoming:
    """The resolved `Incoming` of a close request for `alias`."""
    return Incoming(
        source=Source.OPSGENIE,
        event_key=bounded(f"og:{integration}:{alias}:close:{nonce}"),
        record_key=bounded(f"{integration}:{alias}"),
        status=Status.RESOLVED,
        name="alert",
    )


def parse_action(payload: Any, note_required: bool = False) -> Action:
    """The optional body of close and acknowledge (`user`, `source`, `note`); add-note needs `note`."""
    if payload is None and not note_required:
        return Action()
    if not isinstance(payload, dict):
        raise Unprocessable({"body": "must be a JSON object"})
    errors: dict[str, str] = {}
    found = {name: _string(payload, name, errors) for name in ("user", "source", "note")}
    if note_required and not found["note"].strip():
        errors["note"] = "Note can not be empty."
    if errors:
        raise Unprocessable(errors)
    return Action(found["user"][:100], found["source"][:100], found["note"][:NOTE_LIMIT])


def parse_update(payload: Any, name: str) -> str:
    """The new `message` or `description` of an update request."""
    if not isinstance(payload, dict):
        raise Unprocessable({"body": "must be a JSON object"})
    errors: dict[str, str] = {}
    value = _string(payload, name, errors)
    if not errors and not value.strip():
        errors[name] = f"{name.capitalize()} can not be empty."
    if errors:
        raise Unprocessable(errors)
    return value[: MESSAGE_LIMIT if name == "message" else DESCRIPTION_LIMIT]


def _string(payload: dict[str, Any], name: str, errors: dict[str, str]) -> str:
    value = payload.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        errors[name] = f"{name.capitalize()} should be a string."
        return ""
    return text_of(value, len(value))  # one line: a sender's newline must not start a line of a page
