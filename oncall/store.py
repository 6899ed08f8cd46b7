"""The on-call tables: overrides typed by SMS, the last handoff per team, cached iCal feeds, warnings sent.

Only this module reads or writes them; everything else calls these functions.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Column, Connection, Float, Integer, String, Table, Text, delete, select, update

from core import db

overrides = Table(
    "oncall_overrides",
    db.metadata,
    Column("id", Integer, primary_key=True),
    Column("team", String(32), nullable=False, index=True),
    Column("phone", String(32), nullable=False),
    Column("starts_at", Float, nullable=False),
    Column("ends_at", Float, nullable=False, index=True),
    Column("created_by", String(32), nullable=False),
    Column("created_at", Float, nullable=False),
)

# Who was last told they are on call, per team: a handoff is texted once, across workers and restarts.
handoffs = Table(
    "oncall_handoffs",
    db.metadata,
    Column("team", String(32), primary_key=True),
    Column("phone", String(32)),
    Column("since", Float, nullable=False),
    Column("until", Float),
)

feeds = Table(
    "oncall_feeds",
    db.metadata,
    Column("team", String(32), primary_key=True),
    Column("body", Text, nullable=False),
    Column("fetched_at", Float, nullable=False),
)

# One row per warning texted (a gap of a team starting at an instant), so it goes out once.
warnings = Table(
    "oncall_warnings",
    db.metadata,
    Column("key", String(128), primary_key=True),
    Column("sent_at", Float, nullable=False),
)


@dataclass(frozen=True)
class Override:
    id: int
    team: str
    phone: str
    starts_at: float
    ends_at: float
    created_by: str


def add_override(conn: Connection, team: str, phone: str, start: float, end: float, by: str) -> Override:
    inserted = conn.execute(
        overrides.insert().values(
            team=team, phone=phone, starts_at=start, ends_at=end, created_by=by, created_at=start
        )
    )
    return Override(db.inserted_id(inserted), team, phone, start, end, by)


def active_overrides(conn: Connection, now: float, team: str | None = None) -> list[Override]:
    """Overrides not ended at `now` (current and future), newest first: the newest one covering wins."""
    c = overrides.c
    query = select(overrides).where(c.ends_at > now).order_by(c.id.desc())
    if team is not None:
        query = query.where(c.team == team)
    return [
        Override(r.id, r.team, r.phone, r.starts_at, r.ends_at, r.created_by)
        for r in conn.execute(query).all()
    ]


def prune_overrides(conn: Connection, before: float) -> int:
    return conn.execute(delete(overrides).where(overrides.c.ends_at < before)).rowcount


def last_handoff(conn: Connection, team: str) -> tuple[str | None, float] | None:
    row = conn.execute(select(handoffs.c.phone, handoffs.c.since).where(handoffs.c.team == team)).first()
    return (row.phone, row.since) if row else None


def record_handoff(conn: Connection, team: str, phone: str | None, since: float, until: float) -> bool:
    """Store `phone` as the team's on-call; False when it already was (another worker got there)."""
    previous = conn.execute(select(handoffs.c.phone).where(handoffs.c.team == team).with_for_update()).first()
    if previous is None:
        conn.execute(handoffs.insert().values(team=team, phone=phone, since=since, until=until))
        return True
    if previous.phone == phone:
        conn.execute(update(handoffs).where(handoffs.c.team == team).values(until=until))
        return False
    conn.execute(
        update(handoffs).where(handoffs.c.team == team).values(phone=phone, since=since, until=until)
    )
    return True


def feed(conn: Connection, team: str) -> str:
    return conn.execute(select(feeds.c.body).where(feeds.c.team == team)).scalar() or ""


def feed_fetched_at(conn: Connection, team: str) -> float | None:
    return conn.execute(select(feeds.c.fetched_at).where(feeds.c.team == team)).scalar()


def store_feed(conn: Connection, team: str, body: str, at: float) -> None:
    if conn.execute(update(feeds).where(feeds.c.team == team).values(body=body, fetched_at=at)).rowcount == 0:
        conn.execute(feeds.insert().values(team=team, body=body, fetched_at=at))


def warn_once(conn: Connection, key: str, at: float) -> bool:
    """Claim the warning `key`; False when it was sent before."""
    if conn.execute(select(warnings.c.key).where(warnings.c.key == key)).first():
        return False
    conn.execute(warnings.insert().values(key=key[:128], sent_at=at))
    return True
