"""Parsed webhook alerts -> deduplicated records and the texts they cause, in the caller's transaction.

The caller (incidents.webhooks) opens one transaction around `ingest`, so an event is either stored
with its records and outbox rows, or not at all (and the sender's retry tries again).
"""

from __future__ import annotations

import logging
import zlib
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, select, text

from config import Settings
from core import db
from incidents import paging, records
from incidents.records import Alert
from incidents.sources import Incoming, Source, Status
from outbox.queue import Kind

logger = logging.getLogger(__name__)

_CHUNK = 500


@dataclass(frozen=True)
class IngestResult:
    received: int
    new: int
    alert_ids: tuple[int, ...]
    texts: int


def page(conn: Connection, alert: Alert, word: str, settings: Settings, kind: Kind) -> int:
    """Queue one page for `alert` to every recipient; returns the count."""
    body = paging.page_text(alert, word, paging.budget(settings))
    return paging.page(conn, alert, body, paging.route(conn, alert, settings).numbers, settings, kind=kind)


def open_records(conn: Connection, incoming: list[Incoming]) -> dict[tuple[str, str], Alert]:
    """The firing records these events update, by (source, record key): a read, before any write."""
    found: dict[tuple[str, str], Alert] = {}
    for source, key in dict.fromkeys((i.source, i.record_key) for i in incoming):
        current = records.find_firing(conn, source, key)
        if current is not None:
            found[(source, key)] = current
    return found


def sort_ahead(engine: Engine, incoming: list[Incoming], settings: Settings) -> None:
    """Before a write transaction: read the open records briefly and match `incoming`'s routing
    labels against the teams with no transaction open, so `ingest` only looks the teams up (a slow
    match must never hold the store, and SQLite's transactions are all writers)."""
    if not incoming:
        return
    with engine.connect() as conn:
        current = open_records(conn, incoming)
    presort(incoming, current, settings)


def presort(incoming: list[Incoming], current: dict[tuple[str, str], Alert], settings: Settings) -> None:
    """Match the labels `ingest` will route by against the teams, outside any transaction.

    A new record carries its event's name, severity and labels; an open one keeps its name and
    severity and takes the event's labels (records.fire), so both are sorted ahead.
    """
    views = []
    for item in incoming:
        views.append(paging.routing_labels(item.name, item.severity, item.labels))
        record = current.get((item.source, item.record_key))
        if record is not None:
            views.append(paging.routing_labels(record.name, record.severity, item.labels or record.labels))
    paging.presort(views, settings)


def _seen(conn: Connection, keys: list[str]) -> set[str]:
    events = records.alert_events
    seen: set[str] = set()
    for start in range(0, len(keys), _CHUNK):
        chunk = keys[start : start + _CHUNK]
        seen.update(conn.scalars(select(events.c.event_key).where(events.c.event_key.in_(chunk))))
    return seen


def _lock(conn: Connection, keys: Iterable[str]) -> None:
    """On PostgreSQL, serialize work on one record so two workers never open it twice."""
    if conn.dialect.name != "postgresql":
        return  # SQLite transactions are already serialized (BEGIN IMMEDIATE)
    for key in sorted(set(keys)):
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": zlib.crc32(key.encode()) + 7263100000})


def ingest(conn: Connection, incoming: list[Incoming], settings: Settings) -> IngestResult:
    """Store new events, open/update/close their records and queue the texts; dedup by event key."""
    groups: dict[tuple[str, str], list[Incoming]] = defaultdict(list)
    for item in incoming:
        groups[(item.source, item.record_key)].append(item)
    _lock(conn, (f"{source}:{key}" for source, key in groups))
    seen = _seen(conn, list({i.event_key for i in incoming}))
    now, texts = db.now(), 0
    ids: list[int] = []
    rows: list[dict[str, str | int | float | None]] = []  # alert_events rows
    for (source, key), items in groups.items():
        fresh = []
        for item in items:
            if item.event_key not in seen:
                seen.add(item.event_key)  # a key repeated inside one payload counts once
                fresh.append(item)
        alert, sent = _apply(conn, source, key, items, fresh, settings, now)
        texts += sent
        alert_id = alert.id if alert is not None else None
        if alert_id is not None:
            ids.append(alert_id)
        rows.extend({"event_key": i.event_key, "alert_id": alert_id, "received_at": now} for i in fresh)
    if rows:
        conn.execute(records.alert_events.insert(), rows)
    return IngestResult(len(incoming), len(rows), tuple(ids), texts)


def _apply(
    conn: Connection,
    source: str,
    key: str,
    items: list[Incoming],
    fresh: list[Incoming],
    settings: Settings,
    now: float,
) -> tuple[Alert | None, int]:
    """One record's events -> (the record, texts queued)."""
    firing = [i for i in items if i.status == Status.FIRING]
    truncated = max(i.truncated for i in items)
    still_firing = firing or (truncated and any(i.group_status == Status.FIRING for i in items))
    current = records.find_firing(conn, source, key)
    if not fresh:
        if current is not None:
            records.set_fields(conn, current.id, last_seen=now)
        return current, 0
    if not still_firing:
        if current is None:
            return None, 0  # resolved before we ever saw it fire: nothing to tell anyone
        ends = [i.ended_at for i in items if i.ended_at and current.started_at <= i.ended_at <= now]
        closed = records.close(conn, current.id, max(ends, default=now))
        return closed, paging.send_recovery(conn, closed, settings)
    lead = firing[0] if firing else items[0]
    # Firing again before its RESOLVED went out: the same incident, and no new page for it.
    reopened = current is None and records.reopen_flapping(conn, source, key, now, settings.recovery_delay)
    alert, opened = records.fire(
        conn,
        source,
        key,
        lead.name,
        summary=lead.summary,
        severity=lead.severity,
        labels=lead.labels,
        url=lead.url,
        group_key=lead.group_key,
        started_at=min((i.started_at for i in firing if i.started_at), default=None),
    )
    places = sorted({i.place for i in firing if i.place})
    fresh_firing = [i for i in fresh if i.status == Status.FIRING]
    word = (fresh_firing[-1] if fresh_firing else lead).transition
    renotify = word == "RENOTIFY"
    if renotify:  # a reminder from Datadog, not a new state; our own reminders handle repeats
        word = "FIRING" if opened else alert.transition
    # Alertmanager sends a group again only when something in it changed; a reopened flap is not news.
    changed = (source == Source.ALERTMANAGER and not reopened) or word != alert.transition
    records.set_fields(
        conn, alert.id, size=len(firing) + truncated, places=",".join(places)[:2000], transition=word
    )
    alert = records.fetch(conn, alert.id)
    if not fresh_firing:
        return alert, 0
    # A page for a new incident; for an open one only when something new fires (Alertmanager) or
    # the state changes (Datadog WARN -> FIRING), and nobody has taken it yet.
    if opened or (changed and not renotify and not alert.quiet(now)):
        return alert, page(conn, alert, word, settings, Kind.ALERT if opened else Kind.UPDATE)
    return alert, 0
