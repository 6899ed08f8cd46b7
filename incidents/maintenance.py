"""Maintenance windows: for a while, alerts matching a scope are stored but do not page anyone.

A window covers everything, one alertname, or one label=value (Alertmanager labels, Datadog tags,
a rule's labels). While a window covers an alert, paging.page holds its page here instead of
queueing it, and reminders and escalations for it wait. A window ends by itself at `ends_at` (or
earlier by `maintenance off`); the page it held then goes out if the alert still fires and nobody
took it (paging.release_held). Windows live in the store so every gunicorn worker and the worker
process see the same ones. This module is the only code that reads or writes these tables.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, Connection, Float, Integer, String, Table, Text, delete, func, select, update

from core import db
from incidents import records
from incidents.records import Alert, Status

# A bare word in `maintenance 2h HighCPU` names an alert: it matches this label.
ALERTNAME = "alertname"
_PORT = re.compile(r":\d+$")

windows = Table(
    "maintenance_windows",
    db.metadata,
    Column("id", Integer, primary_key=True),
    # NULL: every alert; else the label (alertname for a bare name) and the value it must have.
    Column("label", String(100)),
    Column("value", String(255)),
    Column("created_by", String(32), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("ends_at", Float, nullable=False, index=True),
    # Who ended it before its time (`maintenance off`); NULL when it ran out by itself.
    Column("ended_by", String(32)),
)

# The page a window held, one row per alert: sent as it was composed once no window covers the
# alert (to the recipients chosen then: a rule's own, or the pager numbers).
holds = Table(
    "maintenance_holds",
    db.metadata,
    Column("alert_id", Integer, primary_key=True, autoincrement=False),
    Column("window_id", Integer, nullable=False),
    Column("body", Text, nullable=False),
    Column("numbers", Text, nullable=False),
    Column("held_at", Float, nullable=False),
)


def _same(have: str, wanted: str) -> bool:
    """Equal ignoring case (phones capitalize), and 'db-1' matches 'db-1:9100' as the texts show it."""
    have, wanted = have.casefold(), wanted.casefold()
    return have == wanted or _PORT.sub("", have) == wanted


@dataclass(frozen=True)
class Window:
    id: int
    label: str | None
    value: str | None
    created_by: str
    created_at: float
    ends_at: float
    ended_by: str | None = None

    @property
    def scope(self) -> str:
        """'everything', 'HighCPU' or 'instance=db-1', as a reply shows it."""
        if self.label is None or self.value is None:
            return "everything"
        return self.value if self.label == ALERTNAME else f"{self.label}={self.value}"

    def matches(self, alert: Alert) -> bool:
        if self.label is None or self.value is None:
            return True
        labels = {k.casefold(): v for k, v in alert.labels.items()}
        labels[ALERTNAME] = alert.name
        if alert.severity:
            labels.setdefault("severity", alert.severity)
        have = labels.get(self.label.casefold())
        return have is not None and _same(have, self.value)

    def same_scope(self, label: str | None, value: str | None) -> bool:
        if self.label is None or label is None:
            return self.label is None and label is None
        return (
            self.label.casefold() == label.casefold()
            and (self.value or "").casefold() == (value or "").casefold()
        )


@dataclass(frozen=True)
class Held:
    """A page a window held, due now: the alert and the text and numbers it would have gone to."""

    alert: Alert
    text: str
    numbers: list[str]


def _window(row: Any) -> Window:
    return Window(**dict(row._mapping))


def active(conn: Connection, now: float) -> list[Window]:
    """The windows not ended yet, oldest first."""
    rows = conn.execute(select(windows).where(windows.c.ends_at > now).order_by(windows.c.id)).all()
    return [_window(r) for r in rows]


def get_window(conn: Connection, window_id: int) -> Window | None:
    row = conn.execute(select(windows).where(windows.c.id == window_id)).first()
    return _window(row) if row else None


def start(
    conn: Connection, label: str | None, value: str | None, by: str, ends_at: float, now: float
) -> tuple[Window, float | None]:
    """Open a window (or move the end of the running one with the same scope); returns it and its old end."""
    for window in active(conn, now):
        if window.same_scope(label, value):
            set_end(conn, window.id, ends_at)
            return _fetch(conn, window.id), window.ends_at
    inserted = conn.execute(
        windows.insert().values(label=label, value=value, created_by=by, created_at=now, ends_at=ends_at)
    )
    return _fetch(conn, db.inserted_id(inserted)), None


def _fetch(conn: Connection, window_id: int) -> Window:
    window = get_window(conn, window_id)
    if window is None:
        raise LookupError(f"maintenance window #{window_id} does not exist")
    return window


def set_end(conn: Connection, window_id: int, ends_at: float) -> None:
    """Move a window's end (extended by a second `maintenance 2h` with the same scope)."""
    conn.execute(update(windows).where(windows.c.id == window_id).values(ends_at=ends_at))


def end(conn: Connection, window_ids: Iterable[int], by: str, now: float) -> list[Window]:
    """End these windows now (those still running); returns the ones it ended."""
    wanted = set(window_ids)
    ended = [w for w in active(conn, now) if w.id in wanted]
    if ended:
        conn.execute(
            update(windows).where(windows.c.id.in_([w.id for w in ended])).values(ends_at=now, ended_by=by)
        )
    return ended


def covering(running: Iterable[Window], alert: Alert) -> Window | None:
    """The first of the running windows that matches the alert."""
    return next((w for w in running if w.matches(alert)), None)


def held_counts(conn: Connection) -> dict[int, int]:
    """How many pages each window holds."""
    h = holds.c
    return {r.window_id: r[1] for r in conn.execute(select(h.window_id, func.count()).group_by(h.window_id))}


def hold(conn: Connection, alert: Alert, text: str, numbers: list[str], now: float) -> Window | None:
    """Keep this page back if a window covers the alert; returns that window (None: page now)."""
    window = covering(active(conn, now), alert)
    h = holds.c
    if window is None:
        # Paged now, so nothing about it is held any more (a group that grew out of its window).
        conn.execute(delete(holds).where(h.alert_id == alert.id))
        return None
    values = {"window_id": window.id, "body": text, "numbers": json.dumps(list(numbers))}
    if not conn.execute(update(holds).where(h.alert_id == alert.id).values(**values)).rowcount:
        conn.execute(holds.insert().values(alert_id=alert.id, held_at=now, **values))
    return window


def withheld(conn: Connection, alert: Alert, now: float) -> bool:
    """A window covers it, or its page is still held: no reminder or escalation about it yet."""
    held = conn.execute(select(holds.c.alert_id).where(holds.c.alert_id == alert.id)).first()
    return held is not None or covering(active(conn, now), alert) is not None


def released(conn: Connection, now: float) -> list[Held]:
    """Take the held pages no running window covers any more (dropping those of closed alerts)."""
    rows = conn.execute(select(holds).order_by(holds.c.held_at)).all()
    if not rows:
        return []
    running, due = active(conn, now), []
    for row in rows:
        alert = records.get(conn, row.alert_id)
        firing = alert is not None and alert.status == Status.FIRING
        if firing and alert is not None and (window := covering(running, alert)) is not None:
            if window.id != row.window_id:  # its window ended, another one still covers it
                conn.execute(
                    update(holds).where(holds.c.alert_id == row.alert_id).values(window_id=window.id)
                )
            continue
        # Deleting is the claim: a second worker releasing at the same moment finds nothing.
        claimed = conn.execute(delete(holds).where(holds.c.alert_id == row.alert_id)).rowcount
        if claimed and firing and alert is not None:
            due.append(Held(alert, row.body, json.loads(row.numbers)))
    return due
