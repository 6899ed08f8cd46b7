"""Per-number rate limits shared by every worker and host, via the `limits` library.

Counters live in Redis when REDIS_URL is set, otherwise in the database through `SQLStorage`,
a `limits` storage backed by the store's `rate_limits` table. Both go through the same
FixedWindowRateLimiter, so the arithmetic is the library's, not ours.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, parse_many
from limits.errors import StorageError
from limits.storage import Storage, storage_from_string
from limits.strategies import FixedWindowRateLimiter
from sqlalchemy import Engine, bindparam, case, delete, select
from sqlalchemy.exc import SQLAlchemyError

import store
from security import mask

logger = logging.getLogger(__name__)


class SQLStorage(Storage):
    """Fixed-window counters in the `rate_limits` table (SQLite or PostgreSQL)."""

    STORAGE_SCHEME = ["operator-sql"]

    def __init__(self, engine: Engine):
        super().__init__()
        self.engine = engine
        self._upsert = self._build_upsert(engine.dialect.name)

    @staticmethod
    def _build_upsert(dialect: str):
        """One INSERT ... ON CONFLICT statement, built once: it runs on every message."""
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        table = store.rate_limits
        now, amount, expires = bindparam("now"), bindparam("amount"), bindparam("expires")
        expired = table.c.expires_at <= now
        return (
            insert(table)
            .values(key=bindparam("k"), count=amount, expires_at=expires)
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
        params = {"k": key, "amount": amount, "now": now, "expires": now + expiry}
        with self.engine.begin() as conn:
            return int(conn.execute(self._upsert, params).scalar_one())

    def _row(self, key: str):
        with self.engine.connect() as conn:
            return conn.execute(
                select(store.rate_limits.c.count, store.rate_limits.c.expires_at).where(
                    store.rate_limits.c.key == key
                )
            ).first()

    def get(self, key: str) -> int:
        row = self._row(key)
        return int(row.count) if row and row.expires_at > time.time() else 0

    def get_expiry(self, key: str) -> float:
        row = self._row(key)
        return float(row.expires_at) if row and row.expires_at > time.time() else time.time()

    def check(self) -> bool:
        return store.ping(self.engine)

    def reset(self) -> int | None:
        with self.engine.begin() as conn:
            return conn.execute(delete(store.rate_limits)).rowcount

    def clear(self, key: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(store.rate_limits).where(store.rate_limits.c.key == key))


def make_storage(redis_url: str, engine: Engine) -> Storage:
    """Redis when configured, else the database."""
    return storage_from_string(redis_url) if redis_url else SQLStorage(engine)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    # True once per window for a number over its limit: it gets one "slow down" reply.
    notify: bool = False
    retry_after: float = 0.0


class RateLimiter:
    """Stepped limits ("10 per 5 minutes; 100 per day") for one purpose, keyed by phone."""

    def __init__(self, storage: Storage, limits: str, namespace: str):
        self.storage = storage
        self.items: list[RateLimitItem] = parse_many(limits)
        self.namespace = namespace
        self.strategy = FixedWindowRateLimiter(storage)

    def hit(self, phone: str) -> Decision:
        """Count one message from `phone` and say whether it may go through.

        Fails open: an on-call engineer locked out of Operator because the counter store is down
        is worse than a few uncounted messages from an authorized number.
        """
        try:
            return self._hit(phone)
        except (StorageError, self.storage.base_exceptions) as exc:
            logger.error(
                "rate-limit store failed (%s); letting %s through", exc.__class__.__name__, mask(phone)
            )
            return Decision(True)

    def _hit(self, phone: str) -> Decision:
        for item in self.items:
            if not self.strategy.hit(item, self.namespace, phone):
                reset_at = self.strategy.get_window_stats(item, self.namespace, phone).reset_time
                retry_after = max(1.0, reset_at - time.time())
                # One notice per window: a counter that expires with the window being enforced.
                notice_key = item.key_for(self.namespace + "-notice", phone)
                notify = self.storage.incr(notice_key, math.ceil(retry_after)) == 1
                return Decision(False, notify, retry_after)
        return Decision(True)

    def reset(self, phone: str) -> None:
        for item in self.items:
            self.strategy.clear(item, self.namespace, phone)
