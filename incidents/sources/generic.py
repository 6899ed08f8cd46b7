"""A generic webhook (JSON, or a form) -> one `Incoming` event, as GoAlert's generic API reads it.

By default a post names its alert with `summary`, adds `details`, keys it with `dedup` (else its
summary and details are the key) and resolves it with `action=close`. An integration's `fields:`
reads each of those from a dotted path of its own JSON (`alert.title`, `items.0.id`), and its
`resolve_when:` lists the values of a path that mean resolved (`state: [ok, resolved]`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from incidents.sources import Incoming, PayloadError, Source, Status, bounded, digest, text_of

FIELDS = ("summary", "details", "dedup", "severity", "status")
# GoAlert's names; `status` is read from `action` unless `fields:` says otherwise.
DEFAULTS = {"summary": "summary", "details": "details", "dedup": "dedup", "status": "action"}
# Status values that resolve without a `resolve_when:` (GoAlert's `close`, Alertmanager's word).
CLOSING = frozenset({"close", "resolved"})
# A path: up to 16 names (or list indexes) of up to 100 characters, joined by dots.
PATH = re.compile(r"[^.\s]{1,100}(?:\.[^.\s]{1,100}){0,15}")
DEDUP_LIMIT = 255


@dataclass(frozen=True)
class Spec:
    """Where each field is read, and which values of which paths mean resolved."""

    paths: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULTS))
    resolve_when: Mapping[str, frozenset[str]] = field(default_factory=dict)


def spec_of(fields: Any, resolve_when: Any) -> Spec:
    """An entry's `fields:` and `resolve_when:` checked; ValueError names the key that is wrong."""
    paths = dict(DEFAULTS)
    if fields is not None:
        if not isinstance(fields, Mapping):
            raise ValueError("'fields' must be a mapping of field: dotted.path")
        # Keys are shown as Python writes them: a YAML key with a newline must not split the error.
        unknown = sorted(repr(k)[:40] for k in fields if k not in FIELDS)
        if unknown:
            raise ValueError(
                f"'fields' has an unknown field {', '.join(unknown)}; known: {', '.join(FIELDS)}"
            )
        for name, path in fields.items():
            paths[name] = _path(path, f"fields.{name}")
    when: dict[str, frozenset[str]] = {}
    if resolve_when is not None:
        if not isinstance(resolve_when, Mapping):
            raise ValueError("'resolve_when' must be a mapping of dotted.path: [values]")
        for path, values in resolve_when.items():
            where = "resolve_when." + _path(path, "resolve_when")
            if not isinstance(values, list) or not values:
                raise ValueError(f"'{where}' must be a list of the values that mean resolved")
            words = [_word(v) for v in values]
            if any(w is None for w in words):
                raise ValueError(f"'{where}' must list text, numbers or booleans")
            when[path] = frozenset(w for w in words if w is not None)
    return Spec(paths, when)


def _path(value: Any, where: str) -> str:
    if not isinstance(value, str) or not PATH.fullmatch(value):
        raise ValueError(f"'{where}' must be a dotted path like alert.title, not {repr(value)[:60]}")
    return value


def _word(value: Any) -> str | None:
    """A value as compared with `resolve_when`: text, lower case; None for objects and lists."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return text_of(value, 200).strip().lower()
    return None


def read(payload: Any, path: str) -> Any:
    """The value at a dotted path (a form's own dotted key first); None when absent."""
    if isinstance(payload, dict) and path in payload:
        return payload[path]
    value = payload
    for name in path.split("."):
        if isinstance(value, dict):
            value = value.get(name)
        elif isinstance(value, list) and name.isdigit() and int(name) < len(value):
            value = value[int(name)]
        else:
            return None
    return value


def parse_generic(payload: Any, integration: str, nonce: str, spec: Spec | None = None) -> list[Incoming]:
    """One post's event; `nonce` tells deliveries apart, so a dedup key that fires again after
    its close opens a new alert (an open one takes the post as a repeat)."""
    spec = spec or Spec()
    if not isinstance(payload, dict):
        raise PayloadError("expected a JSON object or a form (summary, details, dedup, action)")

    def text(name: str, limit: int) -> str:
        path = spec.paths.get(name)
        return text_of(read(payload, path), limit, f"{name} (at '{path}')") if path else ""

    summary = text("summary", 500)
    details = _details(read(payload, spec.paths["details"]) if "details" in spec.paths else None)
    status = _word(read(payload, spec.paths["status"])) if "status" in spec.paths else None
    resolved = status in CLOSING or any(
        _word(read(payload, path)) in values for path, values in spec.resolve_when.items()
    )
    key = text("dedup", DEDUP_LIMIT) or (digest(summary + "\n" + details) if summary else "")
    if not key:
        raise PayloadError(f"'summary' is required (read from '{spec.paths.get('summary')}')")
    if not resolved and not summary:
        raise PayloadError(f"'summary' is required to open an alert (read from '{spec.paths['summary']}')")
    state = Status.RESOLVED if resolved else Status.FIRING
    return [
        Incoming(
            source=Source.GENERIC,
            event_key=bounded(f"generic:{integration}:{key}:{state}:{nonce}"),
            record_key=bounded(f"{integration}:{key}"),
            status=state,
            name=summary[:200] or "alert",
            summary=details,
            severity=text("severity", 32),
            group_key=key,
        )
    ]


def _details(value: Any) -> str:
    """Details as one line: text as sent, an object or list as its JSON (Zabbix sends either)."""
    if isinstance(value, dict | list):
        return text_of(json.dumps(value, ensure_ascii=False, sort_keys=True), 500)
    return text_of(value, 500, "details")
