"""Alerts as records: one row per incident, whatever raised it (a rule, Alertmanager, Datadog).

Short numeric ids are what people type ("ack 12"). A record is `firing` until resolved; acks,
snoozes and silences are columns on it, so every command works the same for every source.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Column,
    ColumnElement,
    Connection,
    Float,
    Integer,
    Select,
    String,
    Table,
    Text,
    and_,
    func,
    not_,
    or_,
    select,
    update,
)

from conversation import composer
from core import db
from incidents.sources import Source, Status
from outbox import queue
from outbox.queue import Kind
from outbox.sender import Brief

# Severities whose texts never wait behind the storm limits (Alertmanager's `severity` label,
# Datadog's priority, a rule's `severity`), compared in lower case.
CRITICAL = frozenset({"critical", "crit", "emergency", "fatal", "p1", "sev1", "sev-1", "p0", "sev0"})

logger = logging.getLogger(__name__)

alerts = Table(
    "alerts",
    db.metadata,
    Column("id", Integer, primary_key=True),
    Column("source", String(16), nullable=False),  # rule | alertmanager | datadog | heartbeat
    # Identity within the source: rule name, Alertmanager group, Datadog alert id, heartbeat name.
    Column("key", String(255), nullable=False, index=True),
    Column("name", String(255), nullable=False),
    Column("summary", Text, nullable=False, default=""),
    Column("severity", String(32), nullable=False, default=""),
    Column("labels", Text, nullable=False, default="{}"),
    Column("url", Text),
    Column("group_key", Text),
    Column("status", String(16), nullable=False, index=True),  # firing | resolved
    Column("started_at", Float, nullable=False),
    Column("last_seen", Float, nullable=False),
    Column("resolved_at", Float),
    Column("acked_by", String(32)),
    Column("acked_at", Float),
    Column("snoozed_until", Float),
    Column("silence_id", String(64)),
    Column("last_notified_at", Float),
    Column("escalated_at", Float),
    # When Operator opened the record (started_at is when the source says it began); when a
    # maintenance window held its first page, when that page went out (escalation counts from it).
    Column("opened_at", Float),
    # Alertmanager groups: how many alerts fire in the group, and where ("web-1,web-2").
    Column("size", Integer, nullable=False, default=1),
    Column("places", Text, nullable=False, default=""),
    # The word the last page used: FIRING, WARN, NO DATA.
    Column("transition", String(16), nullable=False, default="FIRING"),
    # Who closed it by hand (`resolve 12`); NULL when its source or its rule resolved it.
    Column("resolved_by", String(32)),
    # When the Alertmanager silence Operator created ends (the silence does that by itself).
    Column("silenced_until", Float),
)

# One row per webhook event ever accepted: the unique key is what makes HA pairs, group re-sends
# and sender retries text only once, across workers and restarts.
alert_events = Table(
    "alert_events",
    db.metadata,
    Column("event_key", String(255), primary_key=True),
    Column("alert_id", Integer, index=True),
    Column("received_at", Float, nullable=False, index=True),
)


@dataclass(frozen=True)
class Alert:
    id: int
    source: Source
    key: str
    name: str
    summary: str
    severity: str
    labels: dict[str, str]
    url: str | None
    group_key: str | None
    status: Status
    started_at: float
    last_seen: float
    resolved_at: float | None
    acked_by: str | None
    acked_at: float | None
    snoozed_until: float | None
    silence_id: str | None
    last_notified_at: float | None
    escalated_at: float | None
    opened_at: float | None = None
    size: int = 1
    places: str = ""
    transition: str = "FIRING"
    resolved_by: str | None = None
    silenced_until: float | None = None

    @classmethod
    def from_row(cls, row: Any) -> Alert:
        """The record as stored, read so that one absurd value (stored before sources were
        validated, or by hand) cannot break every command that lists alerts."""
        data = dict(row._mapping)
        for name in _TIMES:
            if data[name] is not None and not math.isfinite(data[name]):
                data[name] = None
        data["last_seen"] = data["last_seen"] or data["opened_at"] or 0.0
        data["started_at"] = data["started_at"] or data["opened_at"] or data["last_seen"]
        data["labels"] = _labels(data["labels"])
        # Stored before sources flattened their text, or by hand: still one line in every text.
        for name in ("name", "summary", "severity", "places", "url"):
            if isinstance(data.get(name), str):
                data[name] = composer.one_line(data[name])
        data["size"] = data.get("size") or 1
        data["places"] = data.get("places") or ""
        data["transition"] = data.get("transition") or "FIRING"
        data["status"] = Status(data["status"])
        data["source"] = Source(data["source"])
        return cls(**data)

    def silenced(self, now: float) -> bool:
        """An Operator-made Alertmanager silence that has not ended yet."""
        return bool(self.silence_id) and (self.silenced_until is None or self.silenced_until > now)

    def quiet(self, now: float) -> bool:
        """Someone is on it: acked, snoozed or silenced, so no page, reminder or escalation."""
        return bool(self.acked_at or self.silenced(now) or (self.snoozed_until or 0) > now)

    @property
    def critical(self) -> bool:
        return self.severity.strip().lower() in CRITICAL

    def line(self) -> str:
        """'#12 PostgresDown db-1' ('+2' when it fires in more places): how a list of alerts names it."""
        places = [p for p in self.places.split(",") if p]
        name = composer.normalize(self.name).strip() or "alert"
        name = composer.shorten(name, 40)
        where = ""
        if places:
            more = max(self.size, len(places)) - 1
            where = f" {composer.shorten(composer.normalize(places[0]), 30)}" + (f" +{more}" if more else "")
        return f"#{self.id} {name}{where}"


_TIMES = ("started_at", "last_seen", "resolved_at", "acked_at", "snoozed_until", "last_notified_at",
          "escalated_at", "opened_at", "silenced_until")  # fmt: skip


def _labels(stored: str | None) -> dict[str, str]:
    try:
        labels = json.loads(stored or "{}")
    except ValueError:
        return {}
    if not isinstance(labels, dict):
        return {}
    return {composer.one_line(str(k)): composer.one_line(str(v)) for k, v in labels.items()}


def _readable(rows: Any) -> list[Alert]:
    """The rows as alerts, skipping (and logging) one that cannot be read, so one bad row cannot
    stop a list, a reminder round or an escalation round for every other alert."""
    result = []
    for row in rows:
        try:
            result.append(Alert.from_row(row))
        except (ValueError, TypeError, KeyError):
            logger.exception("alert #%s cannot be read; left out", row._mapping.get("id"))
    return result


def loud(now: float) -> ColumnElement[bool]:
    """SQL for `not Alert.quiet(now)`: nobody acked, snoozed or silenced it."""
    c = alerts.c
    silenced = and_(c.silence_id.is_not(None), or_(c.silenced_until.is_(None), c.silenced_until > now))
    return and_(c.acked_at.is_(None), not_(silenced), or_(c.snoozed_until.is_(None), c.snoozed_until <= now))


def get(conn: Connection, alert_id: int) -> Alert | None:
    row = conn.execute(select(alerts).where(alerts.c.id == alert_id)).first()
    return Alert.from_row(row) if row else None


def fetch(conn: Connection, alert_id: int) -> Alert:
    """The alert with this id, which the caller knows exists (it read or wrote it in this transaction)."""
    alert = get(conn, alert_id)
    if alert is None:
        raise LookupError(f"alert #{alert_id} does not exist")
    return alert


def find_firing(conn: Connection, source: str, key: str) -> Alert | None:
    row = conn.execute(
        select(alerts)
        .where(alerts.c.source == source, alerts.c.key == key, alerts.c.status == Status.FIRING)
        .order_by(alerts.c.id.desc())
    ).first()
    return Alert.from_row(row) if row else None


def fire(
    conn: Connection,
    source: str,
    key: str,
    name: str,
    summary: str = "",
    severity: str = "",
    labels: dict[str, str] | None = None,
    url: str | None = None,
    group_key: str | None = None,
    started_at: float | None = None,
) -> tuple[Alert, bool]:
    """Record that (source, key) is firing; returns (alert, True if this opened a new incident)."""
    now = db.now()
    existing = find_firing(conn, source, key)
    if existing:
        # A group's common labels shrink when an alert on another host joins it: silences and
        # maintenance windows match what the group shares now.
        kept = {"labels": json.dumps(labels, sort_keys=True)} if labels else {}
        conn.execute(
            update(alerts)
            .where(alerts.c.id == existing.id)
            .values(last_seen=now, summary=summary or existing.summary, **kept)
        )
        return fetch(conn, existing.id), False
    inserted = conn.execute(
        alerts.insert().values(
            source=source,
            key=key,
            name=name,
            summary=summary,
            severity=severity,
            labels=json.dumps(labels or {}, sort_keys=True),
            url=url,
            group_key=group_key,
            status=Status.FIRING,
            started_at=started_at or now,
            last_seen=now,
            opened_at=now,
            size=1,
            places="",
            transition="FIRING",
        )
    )
    return fetch(conn, db.inserted_id(inserted)), True


def close(conn: Connection, alert_id: int, at: float | None = None, by: str | None = None) -> Alert:
    """Resolve a firing alert (`by`: the phone that closed it by hand); callers pass an existing id."""
    conn.execute(
        update(alerts)
        .where(alerts.c.id == alert_id, alerts.c.status == Status.FIRING)
        .values(status=Status.RESOLVED, resolved_at=at or db.now(), resolved_by=by)
    )
    return fetch(conn, alert_id)


def reopen_flapping(conn: Connection, source: str, key: str, now: float, window: float) -> Alert | None:
    """Reopen the last incident of (source, key) if it fires again before its RESOLVED went out.

    A flapping rule or group is one incident, not a page per flip: the queued recovery notices
    are dropped. An incident someone closed by hand is never reopened (the next breach is new).
    """
    last = conn.execute(
        select(alerts.c.id).where(alerts.c.source == source, alerts.c.key == key).order_by(alerts.c.id.desc())
    ).scalar()
    previous = get(conn, last) if last else None
    if previous is None or previous.status != Status.RESOLVED or previous.resolved_by:
        return None
    pending = queue.queued_about(conn, previous.id, Kind.RECOVERY)
    recent = previous.resolved_at is not None and now - previous.resolved_at < window
    if not pending and not recent:
        return None
    set_fields(conn, previous.id, status=Status.FIRING, resolved_at=None, last_seen=now)
    queue.drop_queued(conn, previous.id, Kind.RECOVERY, "alert firing again")
    return get(conn, previous.id)


def loud_webhook_alerts(conn: Connection, now: float) -> list[Alert]:
    """Firing alerts from webhooks (rules and heartbeats remind themselves) that nobody took."""
    c = alerts.c
    webhook = c.source.not_in((Source.RULE, Source.HEARTBEAT))
    rows = conn.execute(
        select(alerts).where(c.status == Status.FIRING, webhook, loud(now)).order_by(c.id)
    ).all()
    return _readable(rows)


def unescalated(conn: Connection, older_than: float, now: float) -> list[Alert]:
    """Firing alerts nobody acked, snoozed or silenced, opened before `older_than`, not yet escalated."""
    c = alerts.c
    opened = func.coalesce(c.opened_at, c.started_at)
    rows = conn.execute(
        select(alerts)
        .where(c.status == Status.FIRING, c.escalated_at.is_(None), loud(now), opened <= older_than)
        .order_by(c.id)
    ).all()
    return _readable(rows)


def firing(conn: Connection) -> list[Alert]:
    rows = conn.execute(select(alerts).where(alerts.c.status == Status.FIRING).order_by(alerts.c.id)).all()
    return _readable(rows)


def set_fields(conn: Connection, alert_id: int, **values: Any) -> None:
    """Update ack/snooze/silence/notification columns of one alert."""
    conn.execute(update(alerts).where(alerts.c.id == alert_id).values(**values))


def latest(conn: Connection) -> Alert | None:
    """The most recently opened alert, firing or not."""
    row = conn.execute(select(alerts).order_by(alerts.c.id.desc()).limit(1)).first()
    return Alert.from_row(row) if row else None


def recent(conn: Connection, limit: int) -> list[Alert]:
    """The last `limit` alerts opened, firing or not, newest first."""
    rows = conn.execute(select(alerts).order_by(alerts.c.id.desc()).limit(limit)).all()
    return _readable(rows)


def received_by(conn: Connection, phone: str, carrier_reports: bool) -> tuple[list[Alert], list[Alert]]:
    """What `phone` was told: (the alerts of the latest page that reached it, newer ones not yet there).

    A page still queued, folded into a digest not yet sent, or not yet accepted by the carrier
    is not something the person can be answering (see queue.pages_to).
    """
    told = queue.pages_to(conn, phone, carrier_reports)
    last = next((t for t in told if t.received), None)
    received = list(dict.fromkeys(t.alert_id for t in told if last and t.text == last.text))
    newer = told[: told.index(last)] if last else told
    waiting = [i for i in dict.fromkeys(t.alert_id for t in newer) if i not in received]
    return _existing(conn, received), _existing(conn, waiting)


def _existing(conn: Connection, alert_ids: list[int]) -> list[Alert]:
    found = [get(conn, alert_id) for alert_id in alert_ids]
    return [a for a in found if a is not None]


def seen(conn: Connection, alert_id: int, at: float) -> None:
    """Its source reported it again (still firing)."""
    set_fields(conn, alert_id, last_seen=at)


def ack(conn: Connection, alert_id: int, phone: str, at: float) -> None:
    set_fields(conn, alert_id, acked_by=phone, acked_at=at)


def snooze(conn: Connection, alert_id: int, until: float) -> None:
    set_fields(conn, alert_id, snoozed_until=until)


def silenced(conn: Connection, alert_id: int, silence_id: str, until: float) -> None:
    """Operator made an Alertmanager silence for this alert, ending at `until`."""
    set_fields(conn, alert_id, silence_id=silence_id, silenced_until=until)


def unsilenced(conn: Connection, alert_id: int) -> None:
    set_fields(conn, alert_id, silence_id=None, silenced_until=None)


def notified(conn: Connection, alert_id: int, at: float) -> None:
    """A page or reminder went out: the reminder clock starts again."""
    set_fields(conn, alert_id, last_notified_at=at)


def escalate(conn: Connection, alert_id: int, at: float) -> bool:
    """Claim the alert for escalation; False when another worker (or an earlier run) did."""
    claimed = conn.execute(
        update(alerts).where(alerts.c.id == alert_id, alerts.c.escalated_at.is_(None)).values(escalated_at=at)
    ).rowcount
    return bool(claimed)


def stale(conn: Connection, alert_id: int, kind: str, now: float) -> str | None:
    """Why a queued text of `kind` about this alert no longer applies (outbox.sender.AlertView)."""
    alert = get(conn, alert_id)
    if alert is None:
        return None
    if kind == Kind.RECOVERY:
        again = alert.status == Status.FIRING or find_firing(conn, alert.source, alert.key)
        return "alert firing again" if again else None
    if alert.status != Status.FIRING:
        return "alert resolved"
    return "alert acked, snoozed or silenced" if alert.quiet(now) else None


def briefs(conn: Connection, alert_ids: list[int]) -> dict[int, Brief]:
    """How a combined page or a digest names each of these alerts (outbox.sender.AlertView)."""
    found: dict[int, Brief] = {}
    ids = list(dict.fromkeys(alert_ids))
    for start in range(0, len(ids), 500):
        for row in conn.execute(select(alerts).where(alerts.c.id.in_(ids[start : start + 500]))):
            alert = Alert.from_row(row)
            found[alert.id] = Brief(alert.line(), alert.status == Status.FIRING, alert.critical)
    return found


def prune_events(conn: Connection, before: float, batch: int) -> int:
    """Delete up to `batch` dedup keys older than `before` whose alert is closed."""
    e = alert_events.c
    closed = or_(e.alert_id.is_(None), e.alert_id.not_in(firing_ids()))
    return db.delete_batch(conn, e.event_key, e.received_at < before, closed, batch=batch)


def firing_ids() -> Select[int]:
    """A subquery of the ids of firing alerts (what retention keeps the texts of)."""
    return select(alerts.c.id).where(alerts.c.status == Status.FIRING)


def named(conn: Connection, name: str) -> bool:
    """Whether any alert of this name (ignoring case) was ever recorded."""
    found = conn.execute(
        select(alerts.c.id).where(func.lower(alerts.c.name) == name.lower()).limit(1)
    ).first()
    return found is not None


def note(conn: Connection, alert_id: int, event: str, at: float) -> bool:
    """Record that `event` happened to this alert (a call's outcome, a keypress), once.

    Kept with the webhook events, keyed `event` itself, so a repeated report (Twilio retrying a
    callback) is recorded once: False when it was already there.
    """
    e = alert_events.c
    if conn.execute(select(e.event_key).where(e.event_key == event)).first() is not None:
        return False
    conn.execute(alert_events.insert().values(event_key=event, alert_id=alert_id, received_at=at))
    return True


def change(conn: Connection, event: str, at: float) -> None:
    """Record a change a sender reported (PagerDuty's change events): an event of no alert, never paged."""
    conn.execute(alert_events.insert().values(event_key=event, alert_id=None, received_at=at))


def notes(conn: Connection, alert_id: int, prefix: str) -> list[str]:
    """The events recorded for this alert whose key starts with `prefix`, oldest first."""
    e = alert_events.c
    rows = conn.execute(
        select(e.event_key)
        .where(e.alert_id == alert_id, e.event_key.startswith(prefix, autoescape=True))
        .order_by(e.received_at, e.event_key)
    ).all()
    return [r.event_key for r in rows]


def firing_newest(conn: Connection, limit: int) -> tuple[list[Alert], int]:
    """The newest `limit` firing alerts, and how many fire in all."""
    c = alerts.c
    rows = conn.execute(select(alerts).where(c.status == Status.FIRING).order_by(c.id.desc()).limit(limit))
    total = conn.execute(select(func.count()).where(c.status == Status.FIRING)).scalar() or 0
    return _readable(rows), int(total)


def older_than(conn: Connection, limit: int, before_id: int | None = None) -> list[Alert]:
    """Up to `limit` alerts, newest first, with ids below `before_id`."""
    c = alerts.c
    query = select(alerts).order_by(c.id.desc()).limit(limit)
    if before_id is not None:
        query = query.where(c.id < before_id)
    return _readable(conn.execute(query))


def events(conn: Connection, alert_id: int, limit: int = 200) -> list[tuple[str, float]]:
    """(event key, received at) of each webhook event that reported this alert, oldest first."""
    e = alert_events.c
    rows = conn.execute(
        select(e.event_key, e.received_at).where(e.alert_id == alert_id).order_by(e.received_at).limit(limit)
    )
    return [(r.event_key, r.received_at) for r in rows]
