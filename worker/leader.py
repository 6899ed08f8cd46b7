"""One rule evaluator at a time: a PostgreSQL advisory lock, or a file lock beside the SQLite file.

Both locks belong to the holder's connection or open file, so they vanish the moment the process
dies (even with kill -9); the others keep trying every loop and one takes over within seconds.
"""

from __future__ import annotations

import fcntl
import logging
import os
from typing import TextIO

from sqlalchemy import Connection, Engine, text
from sqlalchemy.engine import make_url

from core import db

logger = logging.getLogger(__name__)

# An arbitrary constant shared by every Operator process: "the rule evaluator".
ADVISORY_KEY = 7263002


class PostgresLeader:
    """Session-level pg_try_advisory_lock on a connection held for as long as we lead."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.conn: Connection | None = None

    def acquire(self) -> bool:
        """True while we hold the lock; tries to take it when we don't."""
        try:
            if self.conn is not None:
                self.conn.execute(text("SELECT 1"))
                return True
            conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            if conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": ADVISORY_KEY}).scalar():
                self.conn = conn
                return True
            conn.close()
            return False
        except Exception as exc:  # noqa: BLE001 - a lost connection means we no longer lead
            # A store that went away is one line; anything else keeps its traceback.
            logger.warning("leader lock %s: %s", "connection lost, stepping down" if self.conn else "not taken",
                           exc.__class__.__name__, exc_info=not isinstance(exc, db.UNREACHABLE))  # fmt: skip
            self._drop()
            return False

    def release(self) -> None:
        if self.conn is not None:
            try:
                self.conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": ADVISORY_KEY})
            except Exception:  # noqa: BLE001 - closing the connection frees it anyway
                logger.debug("advisory unlock failed", exc_info=True)
            self._drop()

    def _drop(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:  # noqa: BLE001
                pass
        self.conn = None


class FileLeader:
    """An exclusive flock on `<database>.leader`, for SQLite (one host by definition)."""

    def __init__(self, path: str):
        self.path = path
        self.handle: TextIO | None = None

    def acquire(self) -> bool:
        if self.handle is not None:
            return True
        handle = open(self.path, "a+")  # noqa: SIM115 - held open for as long as we lead
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        self.handle = handle
        return True

    def release(self) -> None:
        if self.handle is not None:
            fcntl.flock(self.handle, fcntl.LOCK_UN)
            self.handle.close()
            self.handle = None


def make_leader(engine: Engine, fallback_dir: str = "var") -> PostgresLeader | FileLeader:
    """The right lock for the store in use."""
    if db.is_postgres(engine):
        return PostgresLeader(engine)
    database = make_url(str(engine.url)).database
    if database and database != ":memory:":
        return FileLeader(os.path.abspath(database) + ".leader")
    os.makedirs(fallback_dir, exist_ok=True)
    return FileLeader(os.path.join(fallback_dir, "operator.leader"))
