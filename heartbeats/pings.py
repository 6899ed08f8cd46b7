"""Pings of the dead man's switch and the incidents they open and close, in the caller's transaction.

A heartbeat is armed by its first ping (a job that was never set up does not page); from then
on the leading worker pages when `timeout` passes without one (heartbeats.watch), and the next
ping closes that incident with a recovery notice. The `heartbeats` table is only read and written
here: its row says when the last ping came and which incident the current silence opened.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import Column, Connection, Float, Integer, String, Table, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite

from config import Heartbeat, Settings
from core import db
from incidents import paging, records
from incidents.sources import Source, Status

logger = logging.getLogger(__name__)

heartbeats = Table(
    "heartbeats",
    db.metadata,
    Column("name", String(64), primary_key=True),
    Column("last_seen", Float, nullable=False),
    # The incident this silence opened; cleared by the next ping. Set while it is closed by hand
    # too, so a `resolve` holds until pings return instead of paging again at the next check.
    Column("alert_id", Integer),
)


@dataclass(frozen=True)
class Pinged:
    name: str
    last_seen: float
    alert_id: int | None


def state(conn: Connection, name: str, lock: bool = False) -> Pinged | None:
    """The heartbeat's row (None until its first ping); `lock` holds it for this transaction."""
    query = select(heartbeats).where(heartbeats.c.name == name)
    row = conn.execute(query.with_for_update() if lock else query).first()
    return Pinged(row.name, row.last_seen, row.alert_id) if row else None


def ping(conn: Connection, heartbeat: Heartbeat, settings: Settings, now: float) -> bool:
    """Record a ping; closes the incident its silence opened. Returns True when it was missing."""
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    conn.execute(insert(heartbeats).values(name=heartbeat.name, last_seen=now).on_conflict_do_nothing())
    # Locked so the watch job never pages for a silence this ping has just ended.
    before = state(conn, heartbeat.name, lock=True)
    conn.execute(
        update(heartbeats).where(heartbeats.c.name == heartbeat.name).values(last_seen=now, alert_id=None)
    )
    if before is None or before.alert_id is None:
        return False
    alert = records.get(conn, before.alert_id)
    if alert is not None and alert.status == Status.FIRING:
        closed = records.close(conn, alert.id, at=now)
        paging.send_recovery(conn, closed, settings, now=now)
        logger.info("heartbeat %s pinged again: alert #%d resolved", heartbeat.name, alert.id)
    return True


def opened(conn: Connection, name: str, alert_id: int) -> None:
    """The silence of `name` is incident `alert_id`."""
    conn.execute(update(heartbeats).where(heartbeats.c.name == name).values(alert_id=alert_id))


def forget(conn: Connection, keep: list[str]) -> None:
    """Heartbeats gone from the file: their incidents close quietly and their rows go."""
    for alert in records.firing(conn):
        if alert.source == Source.HEARTBEAT and alert.key not in keep:
            logger.info("heartbeat %s was removed: closing alert #%d", alert.key, alert.id)
            records.close(conn, alert.id)
    conn.execute(delete(heartbeats).where(heartbeats.c.name.not_in(keep)))


def every(conn: Connection) -> dict[str, Pinged]:
    """Every armed heartbeat's row, by name."""
    return {r.name: Pinged(r.name, r.last_seen, r.alert_id) for r in conn.execute(select(heartbeats))}
