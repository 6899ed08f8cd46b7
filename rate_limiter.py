"""Per-number rate limits shared by every worker and host, via the `limits` library.

Counters live in Redis when REDIS_URL is set, otherwise in the database through `SQLStorage`,
a `limits` storage backed by the `rate_limits` table, which this module owns. Both go through the same
FixedWindowRateLimiter, so the arithmetic is the library's, not ours.

A Redis that refuses or stops answering costs one short timeout: the limiter then counts in the
database for REDIS_RETRY seconds before it tries Redis again, logged once and counted in metrics.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from limits import RateLimitItem, parse_many
from limits.errors import StorageError
from limits.storage import Storage, storage_from_string
from limits.strategies import FixedWindowRateLimiter
from prometheus_client import Counter
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Float,
    Integer,
    String,
    Table,
    bindparam,
    case,
    delete,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.sql.dml import ReturningInsert

from config import ConfigError
from core import db
from security import mask

logger = logging.getLogger(__name__)

# Seconds to wait for Redis to connect or answer: a rate-limit check is on every reply's path.
REDIS_TIMEOUT = 0.25
# Seconds the database counts alone after a Redis failure, so an outage costs one timeout per
# process per period instead of one per message.
REDIS_RETRY = 15

STORE_ERRORS = Counter(
    "operator_rate_limit_store_errors_total",
    "Rate-limit counter store failures (primary: Redis or the database; fallback: the database)",
    ["store"],
)
FALLBACK_HITS = Counter(
    "operator_rate_limit_fallback_total", "Messages counted in the database because Redis failed"
)
UNCOUNTED = Counter(
    "operator_rate_limit_uncounted_total", "Messages let through uncounted because no counter store answered"
)

# Fixed-window counters for the `limits` library when no Redis is configured.
rate_limits = Table(
    "rate_limits",
    db.metadata,
    Column("key", String(255), primary_key=True),
    Column("count", Integer, nullable=False),
    Column("expires_at", Float, nullable=False),
)


class SQLStorage(Storage):
    """Fixed-window counters in the `rate_limits` table (SQLite or PostgreSQL)."""

    STORAGE_SCHEME = ["operator-sql"]

    def __init__(self, engine: Engine):
        super().__init__()
        self.engine = engine
        self._insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
        self._count = self._upsert()
        # A transaction of the caller's to count in (see `within`), per thread and request.
        self._shared: ContextVar[Connection | None] = ContextVar(f"sql-storage-{id(self)}", default=None)

    @contextmanager
    def within(self, conn: Connection) -> Iterator[None]:
        """Run the counters inside `conn`'s transaction: one write transaction per message, not two."""
        token = self._shared.set(conn)
        try:
            yield
        finally:
            self._shared.reset(token)

    def _begin(self) -> AbstractContextManager[Connection]:
        shared = self._shared.get()
        return nullcontext(shared) if shared is not None else self.engine.begin()

    def _upsert(self) -> ReturningInsert[int]:
        """One INSERT ... ON CONFLICT: a fresh window when the old one has expired, else a count.

        Built once per storage (it runs for every text); :key, :amount, :now and :expires are
        given to each execute.
        """
        table = rate_limits
        amount, expires = bindparam("amount", type_=Integer), bindparam("expires", type_=Float)
        expired = table.c.expires_at <= bindparam("now", type_=Float)
        return (
            self._insert(table)
            .values(key=bindparam("key", type_=String), count=amount, expires_at=expires)
            .on_conflict_do_update(
                index_elements=[table.c.key],
                set_={
                    "count": case((expired, amount), else_=table.c.count + amount),
                    "expires_at": case((expired, expires), else_=table.c.expires_at),
                },
            )
            .returning(table.c.count)
        )

    @property
    def base_exceptions(self) -> type[Exception]:
        return SQLAlchemyError

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        """Atomically add `amount`, starting a fresh window when the old one has expired."""
        now = time.time()
        with self._begin() as conn:
            params = {"key": key, "amount": amount, "now": now, "expires": now + expiry}
            return int(conn.execute(self._count, params).scalar_one())

    def _row(self, key: str) -> tuple[int, float] | None:
        t = rate_limits.c
        with self._begin() as conn:
            row = conn.execute(select(t.count, t.expires_at).where(t.key == key)).first()
        return (int(row[0]), float(row[1])) if row else None

    def get(self, key: str) -> int:
        row = self._row(key)
        return row[0] if row and row[1] > time.time() else 0

    def get_expiry(self, key: str) -> float:
        row = self._row(key)
        return row[1] if row and row[1] > time.time() else time.time()

    def check(self) -> bool:
        return db.ping(self.engine)

    def reset(self) -> int | None:
        with self.engine.begin() as conn:
            return conn.execute(delete(rate_limits)).rowcount

    def clear(self, key: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(rate_limits).where(rate_limits.c.key == key))


def make_storage(redis_url: str, engine: Engine) -> Storage:
    """Redis when configured (with short timeouts, no retries: the database is the fallback), else the database."""
    if not redis_url:
        return SQLStorage(engine)
    scheme = redis_url.split(":", 1)[0].lower()
    # redis-py waits forever by default and retries 3 times with backoff; timeouts written in the
    # URL (?socket_timeout=...) still win, since redis-py lets the URL override these.
    options: dict[str, Any] = (
        {
            "socket_connect_timeout": REDIS_TIMEOUT,
            "socket_timeout": REDIS_TIMEOUT,
            "retry": Retry(NoBackoff(), 0),
        }
        if scheme in ("redis", "rediss", "redis+unix")
        else {}
    )
    storage = storage_from_string(redis_url, **options)
    if not isinstance(storage, Storage):
        # An async+ scheme gives an asyncio storage, which a synchronous limiter cannot await.
        raise ConfigError(f"REDIS_URL: {redis_url.split(':', 1)[0]} storage is asynchronous; use redis://")
    return storage


@dataclass(frozen=True)
class Decision:
    allowed: bool
    # True once per window for a number over its limit: it gets one "slow down" reply.
    notify: bool = False
    retry_after: float = 0.0


@dataclass(frozen=True)
class Usage:
    """Where a key stands, without counting it."""

    counted: bool = False  # something is counted in one of its current windows
    over: bool = False  # a hit now would be refused
    retry_after: float = 0.0


class RateLimiter:
    """Stepped limits ("10 per 5 minutes; 100 per day") for one purpose, keyed by phone.

    `fallback` (the database, when `storage` is Redis) counts while `storage` fails, and for
    `retry_after` seconds after each failure.
    """

    def __init__(
        self,
        storage: Storage,
        limits: str,
        namespace: str,
        fallback: SQLStorage | None = None,
        retry_after: float = REDIS_RETRY,
    ):
        self.storage = storage
        self.items: list[RateLimitItem] = parse_many(limits)
        self.namespace = namespace
        self.strategy = FixedWindowRateLimiter(storage)
        self.fallback = fallback
        self._fallback_strategy = FixedWindowRateLimiter(fallback) if fallback is not None else None
        # Until when (monotonic) `storage` is skipped after a failure; a race only costs a retry.
        self._down_until = 0.0
        self.retry_after = retry_after

    @property
    def in_database(self) -> bool:
        """True when the counters live in the store (and can share its transactions)."""
        return isinstance(self.storage, SQLStorage)

    def hit(self, phone: str, conn: Connection | None = None) -> Decision:
        """Count one message from `phone` and say whether it may go through.

        With `conn` (only when `in_database`), the counting joins its open transaction, and a
        store failure is raised, since that transaction is lost with it. Otherwise fails open: an on-call engineer locked out of Operator because the counter store is down
        is worse than a few uncounted messages from an authorized number.
        """
        if self._fallback_strategy is not None and time.monotonic() < self._down_until:
            return self._in_fallback(phone)
        try:
            if conn is not None and isinstance(self.storage, SQLStorage):
                with self.storage.within(conn):
                    return self._hit(self.strategy, phone)
            return self._hit(self.strategy, phone)
        except _failures(self.storage) as exc:
            STORE_ERRORS.labels("primary").inc()
            if conn is not None and self.in_database:
                # The caller's transaction failed with the count: letting the message through
                # cannot save it, and its commit would fail on a connection already lost.
                raise
            if self._fallback_strategy is None:
                return _open(phone, exc)
            self._down_until = time.monotonic() + self.retry_after
            logger.error(
                "rate-limit store failed (%s); counting in the database for the next %ds",
                exc.__class__.__name__,
                self.retry_after,
            )
            return self._in_fallback(phone)

    def peek(self, key: str) -> Usage:
        """Where `key` stands, counting nothing (for limits that count failures only).

        Fails open like `hit`: with no counter store answering, nothing is counted.
        """
        if self._fallback_strategy is not None and time.monotonic() < self._down_until:
            return self._peek_fallback(key)
        try:
            return self._peek(self.strategy, key)
        except _failures(self.storage) as exc:
            STORE_ERRORS.labels("primary").inc()
            if self._fallback_strategy is None:
                return _open_usage(exc)
            self._down_until = time.monotonic() + self.retry_after
            logger.error(
                "rate-limit store failed (%s); counting in the database for the next %ds",
                exc.__class__.__name__,
                self.retry_after,
            )
            return self._peek_fallback(key)

    def _peek_fallback(self, key: str) -> Usage:
        assert self._fallback_strategy is not None and self.fallback is not None
        try:
            return self._peek(self._fallback_strategy, key)
        except _failures(self.fallback) as exc:
            STORE_ERRORS.labels("fallback").inc()
            return _open_usage(exc)

    def _peek(self, strategy: FixedWindowRateLimiter, key: str) -> Usage:
        counted, over, retry_after = False, False, 0.0
        for item in self.items:
            stats = strategy.get_window_stats(item, self.namespace, key)
            counted = counted or stats.remaining < item.amount
            if stats.remaining <= 0:
                over = True
                retry_after = max(retry_after, 1.0, stats.reset_time - time.time())
        return Usage(counted, over, retry_after)

    def _in_fallback(self, phone: str) -> Decision:
        assert self._fallback_strategy is not None and self.fallback is not None
        FALLBACK_HITS.inc()
        try:
            return self._hit(self._fallback_strategy, phone)
        except _failures(self.fallback) as exc:
            STORE_ERRORS.labels("fallback").inc()
            return _open(phone, exc)

    def _hit(self, strategy: FixedWindowRateLimiter, phone: str) -> Decision:
        for item in self.items:
            if not strategy.hit(item, self.namespace, phone):
                reset_at = strategy.get_window_stats(item, self.namespace, phone).reset_time
                retry_after = max(1.0, reset_at - time.time())
                # One notice per window: a counter that expires with the window being enforced.
                notice_key = item.key_for(self.namespace + "-notice", phone)
                notify = strategy.storage.incr(notice_key, math.ceil(retry_after)) == 1
                return Decision(False, notify, retry_after)
        return Decision(True)


def _open(phone: str, exc: Exception) -> Decision:
    """Every counter store failed: let the message through (see RateLimiter.hit), counted and logged."""
    UNCOUNTED.inc()
    logger.error("rate-limit store failed (%s); letting %s through", exc.__class__.__name__, mask(phone))
    return Decision(True)


def _open_usage(exc: Exception) -> Usage:
    """Every counter store failed: nothing counts against anyone (see RateLimiter.peek)."""
    UNCOUNTED.inc()
    logger.error("rate-limit store failed (%s); a limit is not checked", exc.__class__.__name__)
    return Usage()


def _failures(storage: Storage) -> tuple[type[Exception], ...]:
    """What a broken counter store raises: StorageError and the backend's own base exceptions."""
    base = storage.base_exceptions
    return (StorageError, *base) if isinstance(base, tuple) else (StorageError, base)
