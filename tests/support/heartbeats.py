"""Worker heartbeats and dead man's switch pings as a test sets them up: at a time it chooses."""

from __future__ import annotations

from core import db
from heartbeats import pings
from worker import liveness

HEARTBEAT_TOKEN = "hb-token-4f1c9e2a7d"


def worker_beat(services, seconds_ago: float = 0.0, worker_id: str = "test-host:1") -> None:
    """Record a worker heartbeat as if that worker's loop last turned `seconds_ago`."""
    at = db.now() - seconds_ago
    with services.engine.begin() as conn:
        liveness.beat(conn, worker_id, at, at)


def pinged(services, name: str, seconds_ago: float) -> None:
    """The last ping of heartbeat `name` came `seconds_ago`: time passed since, nothing else."""
    heartbeat = next(h for h in services.settings.heartbeats if h.name == name)
    with services.engine.begin() as conn:
        pings.ping(conn, heartbeat, services.settings, db.now() - seconds_ago)
