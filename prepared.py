"""Statements on the reply path, compiled once per dialect and run straight on the driver.

Every SMS costs two small write transactions. Through SQLAlchemy's Connection each statement
pays for an execution context, event dispatch and a result wrapper, which together cost several
times what SQLite spends on the row (bench/sms_throughput.py measures it). The statements are
still SQLAlchemy Core, compiled by SQLAlchemy for the engine's dialect (SQLite or PostgreSQL);
only their execution skips the Connection. Driver errors come out as SQLAlchemy's own exception
classes (IntegrityError, OperationalError, ...), so callers handle one family as before.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import ClauseElement

logger = logging.getLogger(__name__)


class Tx:
    """An open write transaction: a driver cursor and the dialect it speaks."""

    __slots__ = ("cursor", "dialect", "raw")

    def __init__(self, raw: Any, cursor: Any, dialect: Dialect):
        self.raw, self.cursor, self.dialect = raw, cursor, dialect


class _Compiled:
    __slots__ = ("sql", "order", "processors")

    def __init__(self, statement: ClauseElement, dialect: Dialect, keys: list[str] | None):
        compiled = statement.compile(dialect=dialect, column_keys=keys)
        self.sql = str(compiled)
        # Type conversions the dialect applies to bound values (SQLite: Float -> float).
        processors = dict(compiled._bind_processors)
        if compiled.positional:
            self.order: list[tuple[str, Any]] | None = [(k, processors.get(k)) for k in compiled.positiontup]
            self.processors: dict[str, Any] = {}
        else:
            self.order, self.processors = None, processors

    def args(self, values: Mapping[str, Any]) -> Any:
        if self.order is not None:
            return tuple(values[k] if p is None else p(values[k]) for k, p in self.order)
        if not self.processors:
            return values
        return {k: (self.processors[k](v) if k in self.processors else v) for k, v in values.items()}


class Prepared:
    """One Core statement, compiled the first time each dialect runs it."""

    def __init__(self, statement: ClauseElement, keys: list[str] | None = None):
        self.statement = statement
        # For INSERT/UPDATE: the columns given values (the compiled SQL lists exactly these).
        self.keys = keys
        self._compiled: dict[tuple[str, str, str], _Compiled] = {}

    def _for(self, dialect: Dialect) -> _Compiled:
        key = (dialect.name, dialect.driver, dialect.paramstyle)
        compiled = self._compiled.get(key)
        if compiled is None:
            compiled = self._compiled[key] = _Compiled(self.statement, dialect, self.keys)
        return compiled

    def run(self, tx: Tx, values: Mapping[str, Any]) -> list[Any]:
        """Execute with `values` inside `tx`; the rows it returns (RETURNING, SELECT), else []."""
        compiled = self._for(tx.dialect)
        cursor = tx.cursor
        try:
            cursor.execute(compiled.sql, compiled.args(values))
            # Fetched at once: SQLite cannot commit while a statement still has rows to give.
            return cursor.fetchall() if cursor.description is not None else []
        except tx.dialect.loaded_dbapi.Error as exc:
            raise _wrap(exc, tx.dialect, compiled.sql) from exc


def _wrap(exc: Exception, dialect: Dialect, sql: str | None) -> DBAPIError:
    # Parameters are never included: they carry phone numbers and message bodies.
    return DBAPIError.instance(
        sql, None, exc, dialect.loaded_dbapi.Error, hide_parameters=True, dialect=dialect
    )


@contextmanager
def write(engine: Engine) -> Iterator[Tx]:
    """One write transaction on a pooled connection: committed on success, else rolled back.

    SQLite takes the write lock up front (BEGIN IMMEDIATE), as store.make_engine does for every
    SQLAlchemy transaction, so a busy database waits for the busy timeout instead of failing.
    """
    dialect = engine.dialect
    dbapi_error = dialect.loaded_dbapi.Error
    try:
        raw = engine.raw_connection()
    except dbapi_error as exc:
        raise _wrap(exc, dialect, None) from exc
    cursor = None
    try:
        cursor = raw.cursor()
        if dialect.name == "sqlite":
            cursor.execute("BEGIN IMMEDIATE")
        yield Tx(raw, cursor, dialect)
        raw.commit()
    except BaseException as exc:
        original = exc.orig if isinstance(exc, DBAPIError) else exc
        if isinstance(original, dbapi_error) and dialect.is_disconnect(original, raw, cursor):
            # The server dropped it: out of the pool for good (no rollback on a dead socket).
            raw.invalidate(original)
            raw = None
        if isinstance(exc, dbapi_error):
            raise _wrap(exc, dialect, None) from exc
        raise
    finally:
        if raw is not None:
            if cursor is not None:
                cursor.close()
            # Back to the pool, which rolls back whatever is still open (reset on return).
            raw.close()
