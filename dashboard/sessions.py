"""Dashboard sessions, kept in the store: the `dashboard_sessions` table, which this module owns.

The cookie carries only a random token; the row (keyed by the token's SHA-256, so a copy of the
table opens nothing) says who logged in, as what, with which password, until when, and whether
the session ended. Every process and host reads the same rows, so a logout anywhere is a logout
everywhere, and no use of a session moves its end.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import Column, Connection, Float, Index, String, Table, select, update

from core import db


class Ended(StrEnum):
    LOGOUT = "logout"
    EVERYONE = "everyone"  # an admin's "log everyone out"
    CHANGED = "changed"  # seen after the user, password or role it was opened with changed


dashboard_sessions = Table(
    "dashboard_sessions",
    db.metadata,
    Column("id", String(64), primary_key=True),
    Column("username", String(200), nullable=False),
    Column("role", String(16), nullable=False),
    # Stands for the user and password hash it was opened with (auth.credential): a new password ends it.
    Column("credential", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("ended_at", Float),
    Column("ended_by", String(16)),
)
Index("ix_dashboard_sessions_expires_at", dashboard_sessions.c.expires_at)


@dataclass(frozen=True)
class Session:
    username: str
    role: str
    credential: str
    created_at: float
    expires_at: float


def _key(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start(conn: Connection, username: str, role: str, credential: str, now: float, lifetime: float) -> str:
    """Open a session; returns the token for the cookie. Sessions long over are cleared meanwhile."""
    token = secrets.token_urlsafe(32)
    conn.execute(
        dashboard_sessions.insert().values(
            id=_key(token),
            username=username[:200],
            role=role,
            credential=credential,
            created_at=now,
            expires_at=now + lifetime,
        )  # fmt: skip
    )
    # A day past their end, rows have nothing left to tell: at most a handful go per login.
    db.delete_batch(conn, dashboard_sessions.c.id, dashboard_sessions.c.expires_at < now - 86400, batch=100)
    return token


def live(conn: Connection, token: str, now: float) -> Session | None:
    """The session of `token` if it has neither ended nor run out, else None."""
    t = dashboard_sessions.c
    row = conn.execute(
        select(t.username, t.role, t.credential, t.created_at, t.expires_at).where(
            t.id == _key(token), t.ended_at.is_(None), t.expires_at > now
        )
    ).first()
    return Session(*row) if row else None


def end(conn: Connection, token: str, now: float, why: Ended = Ended.LOGOUT) -> bool:
    """End one session; False when it had already ended."""
    t = dashboard_sessions.c
    result = conn.execute(
        update(dashboard_sessions)
        .where(t.id == _key(token), t.ended_at.is_(None))
        .values(ended_at=now, ended_by=why)
    )
    return result.rowcount == 1


def end_all(conn: Connection, now: float) -> int:
    """Log every session out (an admin's "log everyone out"); how many were still open."""
    t = dashboard_sessions.c
    result = conn.execute(
        update(dashboard_sessions)
        .where(t.ended_at.is_(None), t.expires_at > now)
        .values(ended_at=now, ended_by=Ended.EVERYONE)
    )
    return result.rowcount
