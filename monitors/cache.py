"""A short cache of monitor answers (CACHE_TTL), shared by every gunicorn worker.

A burst of texts ("status", "status", "metrics cpu") from several people should not hit each
backend once per message. Answers live in Redis when REDIS_URL is set, else in the store's
`monitor_cache` table, so every worker and host sees the same entry and the same age. Only
successful answers are kept: a failing backend is asked again on the next message. A cache
that is itself down never breaks a reply; it is skipped with a warning.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict

from redis import Redis
from sqlalchemy import Column, Engine, Float, String, Table, Text, delete, select

from core import db
from core.timeutil import humanize
from monitors.base_monitor import Result

logger = logging.getLogger(__name__)

# Replies mention the age of cached data from this age on; younger is as good as live.
SHOW_AGE_AFTER = 5.0
KEY_PREFIX = "operator:monitor-cache:"

monitor_cache = Table(
    "monitor_cache",
    db.metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
    Column("expires_at", Float, nullable=False, index=True),
)


class MonitorCache:
    """get/put of Results by key with a TTL, in Redis or the store."""

    def __init__(self, ttl: float, redis_url: str = "", database_url: str = "", engine: Engine | None = None):
        self.ttl = ttl
        self.redis_url = redis_url
        self.database_url = database_url
        self._engine = engine
        self._redis: Redis | None = None
        self._table_ready = False

    @classmethod
    def from_settings(cls, settings) -> MonitorCache:
        return cls(settings.cache_ttl, settings.redis_url, settings.database_url)

    @property
    def enabled(self) -> bool:
        return self.ttl > 0 and bool(self.redis_url or self.database_url or self._engine)

    def fetch(self, key: str, call: Callable[[], Result]) -> Result:
        """The cached Result for `key` if fresh, else `call()` (kept when it succeeded)."""
        if not self.enabled:
            return call()
        try:
            cached = self.get(key)
        except Exception:  # noqa: BLE001 - a broken cache must not break replies
            logger.warning("monitor cache read failed; asking the backend", exc_info=True)
            cached = None
        if cached is not None:
            return cached
        result = call()
        if result.ok:
            try:
                self.put(key, result)
            except Exception:  # noqa: BLE001
                logger.warning("monitor cache write failed", exc_info=True)
        return result

    def get(self, key: str) -> Result | None:
        hashed = _hash(key)
        if self.redis_url:
            raw = self._client().get(KEY_PREFIX + hashed)
        else:
            engine = self._store()
            with engine.connect() as conn:
                row = conn.execute(
                    select(monitor_cache.c.value, monitor_cache.c.expires_at).where(
                        monitor_cache.c.key == hashed
                    )
                ).first()
            raw = row.value if row is not None and row.expires_at > time.time() else None
        return _decode(raw) if raw else None

    def put(self, key: str, result: Result) -> None:
        hashed, raw = _hash(key), json.dumps(asdict(result))
        if self.redis_url:
            self._client().set(KEY_PREFIX + hashed, raw, px=max(1, int(self.ttl * 1000)))
            return
        expires = time.time() + self.ttl
        with self._store().begin() as conn:
            conn.execute(delete(monitor_cache).where(monitor_cache.c.expires_at < time.time()))
            conn.execute(delete(monitor_cache).where(monitor_cache.c.key == hashed))
            conn.execute(monitor_cache.insert().values(key=hashed, value=raw, expires_at=expires))

    def close(self) -> None:
        if self._redis is not None:
            self._redis.close()
        if self._engine is not None and self.database_url:
            self._engine.dispose()

    def _client(self) -> Redis:
        if self._redis is None:
            self._redis = Redis.from_url(self.redis_url, socket_timeout=1, socket_connect_timeout=1)
        return self._redis

    def _store(self) -> Engine:
        if self._engine is None:
            self._engine = db.make_engine(self.database_url)
        if not self._table_ready:
            monitor_cache.create(self._engine, checkfirst=True)
            self._table_ready = True
        return self._engine


def age_suffix(result: Result, now: float | None = None) -> str:
    """The suffix " (20s old)" for cached answers older than SHOW_AGE_AFTER, else an empty string."""
    age = (now or time.time()) - result.fetched_at
    return f" ({humanize(age)} old)" if result.ok and age >= SHOW_AGE_AFTER else ""


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:64]


def _decode(raw: str | bytes) -> Result | None:
    try:
        return Result(**json.loads(raw))
    except (ValueError, TypeError):
        return None
