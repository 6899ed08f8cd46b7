"""Datadog's webhook (the custom payload of docs/alert-sources.md, or Datadog's default) -> one `Incoming`."""

from __future__ import annotations

import re
from typing import Any

import re2

from incidents.sources import (
    Incoming,
    PayloadError,
    Source,
    Status,
    bounded,
    digest,
    parse_time,
    place_of,
    text_of,
)

# Datadog transitions that mean "this is (still) a problem", by how they read in an SMS.
_DD_FIRE = {"triggered": "FIRING", "re-triggered": "FIRING", "warn": "WARN", "re-warn": "WARN"}
_DD_TITLE_TAG = re.compile(r"^\s*\[([^\]]*)\]\s*")
_MENTION = re.compile(r"(?<!\S)@\S+")
# RE2, linear in the message: with Python's re this pattern is cubic on a run of '[' (5,000 of
# them in a message took minutes of CPU).
_LINK = re2.compile(r"\[+([^\]]*)\]+\([^)]*\)")


def _dd_transition(text: str) -> tuple[Status, str] | None:
    """Datadog transition text -> (status, SMS word); None for one that is not an alert state."""
    word = text.strip().lower().replace("_", " ")
    if "recover" in word:
        return Status.RESOLVED, "RESOLVED"
    if "no data" in word or word == "nodata":
        return Status.FIRING, "NO DATA"
    if "renotify" in word:
        return Status.FIRING, "RENOTIFY"
    for prefix, label in _DD_FIRE.items():
        if word.startswith(prefix):
            return Status.FIRING, label
    return None


def _dd_tags(value: Any) -> dict[str, str]:
    """'env:prod,host:web-1,role' (or a list) -> {'env': 'prod', 'host': 'web-1', 'role': ''}."""
    parts = value if isinstance(value, list) else text_of(value, 30000, "tags").split(",")
    tags: dict[str, str] = {}
    for part in (text_of(p, 300, "tags").strip() for p in parts[:100]):
        if part:
            name, _, tag_value = part.partition(":")
            tags[text_of(name.strip(), 100)] = text_of(tag_value.strip(), 200)
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
    alert_id = text_of(payload.get("alert_id"), 64, "alert_id").strip()
    transition = text_of(payload.get("transition"), 64, "transition").strip()
    if not alert_id or not transition:
        raise PayloadError("'alert_id' and 'transition' are required (see docs/alert-sources.md, Datadog)")
    state = _dd_transition(transition)
    if state is None:
        return None
    status, word = state
    cycle = text_of(payload.get("cycle_key") or payload.get("id"), 64, "cycle_key").strip()
    scope = text_of(payload.get("scope"), 200, "scope").strip()
    tags = _dd_tags(payload.get("tags"))
    when = parse_time(payload.get("date"), "date")
    title = (
        _strip_tags(text_of(payload.get("title"), 1000, "title"))[1].strip() or f"Datadog alert {alert_id}"
    )
    return Incoming(
        source=Source.DATADOG,
        event_key=bounded(f"dd:{alert_id}:{scope}:{cycle}:{transition.lower()}"),
        record_key=bounded(f"{alert_id}:{scope}" if scope else alert_id),
        status=status,
        name=title[:200],
        summary=_clean(text_of(payload.get("message") or payload.get("status"), 5000, "message")),
        severity=text_of(payload.get("priority"), 32, "priority"),
        labels=tags,
        url=text_of(payload.get("link"), 2000, "link") or None,
        started_at=when,
        ended_at=when if status == Status.RESOLVED else None,
        place=place_of(tags) or scope[:40],
        transition=word,
    )


def _datadog_default(payload: dict) -> Incoming | None:
    """Datadog's default body: the state is only in the title ("[P1] [Triggered on {host:a}] X")."""
    tags, title = _strip_tags(text_of(payload.get("title"), 1000, "title"))
    state, scope = None, ""
    for tag in tags:
        head, _, on = tag.partition(" on ")
        state = state or _dd_transition(head)
        scope = scope or on.strip("{} ")
    if state is None:
        return None
    status, word = state
    name = title.strip() or "Datadog alert"
    when = parse_time(payload.get("date") or payload.get("last_updated"), "date")
    event_id = text_of(payload.get("id"), 64, "id").strip()
    # The default body has no alert id or cycle key: the event id identifies a delivery, and the
    # monitor title (without its state prefix) plus scope identifies the incident.
    event_key = (
        f"dd-event:{event_id}"
        if event_id
        else f"dd-title:{word}:{name}:{scope}:{text_of(payload.get('date'), 64, 'date')}"
    )
    return Incoming(
        source=Source.DATADOG,
        event_key=bounded(event_key),
        record_key=bounded("title:" + digest(f"{name}|{scope}")),
        status=status,
        name=name[:200],
        summary=_clean(text_of(payload.get("body"), 5000, "body")),
        labels=_dd_tags(scope),
        url=text_of(payload.get("link"), 2000, "link") or None,
        started_at=when,
        ended_at=when if status == Status.RESOLVED else None,
        place=place_of(_dd_tags(scope)) or scope[:40],
        transition=word,
    )
