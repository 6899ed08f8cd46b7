"""MORE: the unsent parts of each number's last long reply, kept in the store for every worker.

This module owns the `continuations` table; the inbound path saves a reply's parts inside its
audit transaction and the `more` command takes the next one.
"""

from __future__ import annotations

import json

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Float,
    Integer,
    String,
    Table,
    Text,
    bindparam,
    delete,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from conversation.composer import Part
from core import db

# A continuation older than this is stale data; MORE then says there is nothing left.
TTL = 3600.0

continuations = Table(
    "continuations",
    db.metadata,
    Column("phone", String(32), primary_key=True),
    Column("parts", Text, nullable=False),
    Column("next_part", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
)


def _replace(insert):  # postgresql.insert or sqlite.insert
    # An upsert, not DELETE then INSERT: two replies to one number at once would both insert, and
    # the second would fail on the first's row (PostgreSQL; SQLite serialises writers anyway).
    statement = insert(continuations)
    return statement.on_conflict_do_update(
        index_elements=[continuations.c.phone],
        set_={name: statement.excluded[name] for name in ("parts", "next_part", "created_at")},
    )


# Built once: every answered text runs `save` (see inbound.audit).
_DROP = delete(continuations).where(continuations.c.phone == bindparam("phone"))
_KEEP_PG, _KEEP_SQLITE = _replace(postgresql.insert), _replace(sqlite.insert)


def save(conn: Connection, phone: str, parts: list[str]) -> None:
    """Keep parts[1:] for MORE (parts[0] is being sent now), replacing the number's last ones."""
    if len(parts) <= 1:
        conn.execute(_DROP, {"phone": phone})
        return
    conn.execute(
        _KEEP_PG if conn.dialect.name == "postgresql" else _KEEP_SQLITE,
        {"phone": phone, "parts": json.dumps(parts), "next_part": 1, "created_at": db.now()},
    )


def take_next(engine: Engine, phone: str) -> Part | None:
    """The next unsent part for `phone`, or None."""
    t = continuations
    with engine.begin() as conn:
        row = conn.execute(select(t).where(t.c.phone == phone)).first()
        if row is None or db.now() - row.created_at > TTL:
            return None
        parts = json.loads(row.parts)
        if row.next_part >= len(parts):
            return None
        conn.execute(update(t).where(t.c.phone == phone).values(next_part=row.next_part + 1))
        return Part(parts[row.next_part])
