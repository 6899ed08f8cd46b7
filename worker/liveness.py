"""The worker's own heartbeat: each worker process records when its loop last turned.

/healthz and `flask --app app check` read it (through `liveness`), so gunicorn running without
a worker, or a worker stuck in its loop, is seen instead of leaving pages queued in silence.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Column, Connection, Float, String, Table, delete, func, select, update
from sqlalchemy.exc import SQLAlchemyError

from core import db
from core.timeutil import humanize
from services import Services

# Often enough that WORKER_SILENT_AFTER (default 2m) sees many beats, rarely enough to cost nothing.
PERIOD = 10.0
# Rows of workers gone this long are pruned by retention (each start brings a new id: it has the pid).
FORGET_AFTER = 7 * 86400.0

worker_heartbeats = Table(
    "worker_heartbeats",
    db.metadata,
    Column("worker_id", String(64), primary_key=True),
    Column("started_at", Float, nullable=False),
    Column("beat_at", Float, nullable=False),
)


# A row no worker has: /livez and /healthz rewrite it in place to prove the store still takes a
# write (core.db.cannot_write); every query about workers leaves it out.
PROBE = "(store write probe)"


def probe_write(conn: Connection) -> None:
    """The health check's small write: one row, rewritten in place (inserted the first time)."""
    t = worker_heartbeats.c
    at = db.now()
    if not conn.execute(update(worker_heartbeats).where(t.worker_id == PROBE).values(started_at=at)).rowcount:
        conn.execute(worker_heartbeats.insert().values(worker_id=PROBE, started_at=at, beat_at=0.0))


@dataclass(frozen=True)
class Liveness:
    """What the store says about the workers at one moment."""

    seconds_ago: float | None  # since the newest beat of any worker; None: none ever beat
    workers: int  # how many beat within the silence threshold
    ok: bool

    def describe(self, silent_after: float) -> str:
        if self.seconds_ago is None:
            return "no worker has ever run against this store: start `flask --app app worker`"
        ago = humanize(self.seconds_ago)
        if not self.ok:
            return f"no worker heartbeat for {ago} (over {humanize(silent_after)}): is `flask --app app worker` running?"
        return f"{self.workers} worker(s), last heartbeat {ago} ago"


def beat(conn: Connection, worker_id: str, started_at: float, at: float) -> None:
    """Record that this worker's loop is turning."""
    t = worker_heartbeats.c
    updated = conn.execute(update(worker_heartbeats).where(t.worker_id == worker_id).values(beat_at=at))
    if not updated.rowcount:
        conn.execute(
            worker_heartbeats.insert().values(worker_id=worker_id, started_at=started_at, beat_at=at)
        )


def liveness(conn: Connection, silent_after: float, now: float) -> Liveness:
    """Whether some worker beat within `silent_after` of `now`."""
    t = worker_heartbeats.c
    workers = t.worker_id != PROBE
    last = conn.execute(select(func.max(t.beat_at)).where(workers)).scalar()
    recent = conn.execute(select(func.count()).where(workers, t.beat_at >= now - silent_after)).scalar() or 0
    if last is None:
        return Liveness(None, 0, False)
    return Liveness(max(0.0, now - last), recent, now - last <= silent_after)


def forget_old(conn: Connection, now: float) -> int:
    """Drop the rows of workers silent for FORGET_AFTER; returns how many."""
    t = worker_heartbeats.c
    return conn.execute(
        delete(worker_heartbeats).where(t.worker_id != PROBE, t.beat_at < now - FORGET_AFTER)
    ).rowcount


def check(services: Services) -> tuple[bool, str]:
    """For `flask --app app check`: (ok, what the store says about the workers)."""
    silent_after = services.settings.worker_silent_after
    try:
        with services.engine.connect() as conn:
            state = liveness(conn, silent_after, db.now())
    except SQLAlchemyError as exc:
        return False, f"cannot read the worker heartbeat: store unreachable ({exc.__class__.__name__})"
    return state.ok, state.describe(silent_after)


def workers(conn: Connection) -> list[tuple[str, float, float]]:
    """(worker id, started at, last beat) of every worker on record, latest beat first."""
    t = worker_heartbeats.c
    rows = conn.execute(
        select(t.worker_id, t.started_at, t.beat_at)
        .where(t.worker_id != PROBE)
        .order_by(t.beat_at.desc())
        .limit(20)
    )
    return [(r.worker_id, r.started_at, r.beat_at) for r in rows]
