"""Pending questions ("Reply YES to ack 7 alerts"): one per number, answered once, within a window.

This module owns the `confirmations` table. A command stores the action it would take; the
person's YES takes it back exactly once (a second YES, or one after the window, finds nothing).
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Column, Connection, Float, String, Table, Text, delete, select

from core import db

WINDOW = 300.0

confirmations = Table(
    "confirmations",
    db.metadata,
    Column("phone", String(32), primary_key=True),
    Column("action", Text, nullable=False),
    Column("expires_at", Float, nullable=False),
)


def ask(conn: Connection, phone: str, action: dict[str, Any]) -> None:
    """Keep `action` as this number's question, replacing any earlier one."""
    t = confirmations
    conn.execute(delete(t).where(t.c.phone == phone))
    conn.execute(t.insert().values(phone=phone, action=json.dumps(action), expires_at=db.now() + WINDOW))


def peek(conn: Connection, phone: str) -> dict[str, Any] | None:
    """This number's question if it is still fresh, left in place."""
    t = confirmations
    row = conn.execute(select(t.c.action, t.c.expires_at).where(t.c.phone == phone)).first()
    if row is None or row.expires_at < db.now():
        return None
    action: dict[str, Any] = json.loads(row.action)
    return action


def take(conn: Connection, phone: str) -> dict[str, Any] | None:
    """This number's question if it is still fresh, removed so that one YES acts once."""
    t = confirmations
    row = conn.execute(select(t).where(t.c.phone == phone)).first()
    if row is None:
        return None
    taken = conn.execute(delete(t).where(t.c.phone == phone, t.c.expires_at == row.expires_at)).rowcount
    if not taken or row.expires_at < db.now():
        return None
    action: dict[str, Any] = json.loads(row.action)
    return action


def drop(conn: Connection, phone: str) -> bool:
    """Forget this number's question; False when there was none."""
    return bool(conn.execute(delete(confirmations).where(confirmations.c.phone == phone)).rowcount)
