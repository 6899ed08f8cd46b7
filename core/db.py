"""The one database: engine set-up, the shared `metadata`, and the schema check on start.

SQLite (one host, the default) or PostgreSQL (several hosts) with the same code. Times are
stored as UNIX epoch floats so comparisons are the same arithmetic on both databases. Each
package defines its own tables on `metadata` and is the only code that reads or writes them.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import (
    Column,
    ColumnElement,
    Connection,
    CursorResult,
    Engine,
    MetaData,
    and_,
    case,
    create_engine,
    delete,
    event,
    func,
    or_,
    select,
    text,
)
from sqlalchemy.dialects import registry
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError

logger = logging.getLogger(__name__)

# What the store going away raises (refused, cut, restarting, locked): the worker waits it out,
# saying so in one line, where any other error keeps its traceback.
UNREACHABLE = (OperationalError, InterfaceError)

metadata = MetaData()
MIGRATIONS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "migrations")
# An arbitrary constant shared by every Operator process: "the schema is being migrated".
MIGRATION_LOCK = 7263001
_upgrading = threading.Lock()


def now() -> float:
    return time.time()


# A host cut off from the network must not hold locks (the leader's advisory lock, row locks of
# an open transaction) until the kernel's two-hour keepalive: the server drops a silent client's
# session after about 11 s. The client gives up on a silent server in 5 s and on a connection
# that does not open in 3 s: a text arriving just after its store vanished waits for both (the
# pool's ping of a dead connection, then a new connection) and must still be answered inside
# Twilio's 15 s wait.
_POSTGRES_LIVENESS = {
    "connect_timeout": 3,
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
    "tcp_user_timeout": 5000,
    "options": "-c tcp_keepalives_idle=5 -c tcp_keepalives_interval=2 -c tcp_keepalives_count=3",
}


def make_engine(url: str) -> Engine:
    """An engine for `url`; SQLite gets WAL, a busy timeout and writers queued on a lock file."""
    parsed = make_url(url)
    # hide_parameters: a logged database error must not carry message bodies or phone numbers.
    if parsed.get_backend_name() != "sqlite":
        connect_args = _POSTGRES_LIVENESS if parsed.get_backend_name() == "postgresql" else {}
        engine = create_engine(
            url,
            pool_pre_ping=True,
            pool_size=5,
            max_overflow=5,
            hide_parameters=True,
            connect_args=connect_args,
        )
        event.listen(engine, "handle_error", _note_write_failure)
        return engine
    writer_lock = None
    if parsed.database and parsed.database != ":memory:":
        path = os.path.abspath(parsed.database)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        writer_lock = path + "-writer"
    engine = create_engine(
        parsed.set(drivername="sqlite+operator"),
        connect_args={"timeout": 30},
        hide_parameters=True,
        writer_lock=writer_lock,
    )
    event.listen(engine, "close", _close_writer_fd)
    event.listen(engine, "handle_error", _note_write_failure)
    return engine


_WRITER_FD = "operator_writer_fd"


class QueuedSQLiteDialect(SQLiteDialect_pysqlite):
    """pysqlite whose every transaction is BEGIN IMMEDIATE, taken in turn on a lock file.

    Every transaction writes first (BEGIN IMMEDIATE): a deferred one that later writes can fail
    with "database is locked" without waiting for the busy timeout. SQLite's own busy handler
    polls with sleeps growing to 100 ms, so under load a waiting writer loses its turn to
    newcomers and the slowest text waits a second; an flock on `writer_lock` queues the writers
    of every process and thread in the kernel instead, and the kernel drops it when a process
    dies holding it. The busy timeout still covers writers that do not take the lock (the
    sqlite3 shell).
    """

    supports_statement_cache = True

    def __init__(self, writer_lock: str | None = None, **kw: Any) -> None:
        super().__init__(**kw)
        self.writer_lock = writer_lock

    def on_connect(self) -> Any:
        inherited = super().on_connect()

        def connect(dbapi_conn: Any) -> None:
            if inherited is not None:
                inherited(dbapi_conn)
            # Autocommit at the driver level so do_begin's BEGIN IMMEDIATE is the only
            # transaction control.
            dbapi_conn.isolation_level = None
            for pragma in ("journal_mode=WAL", "busy_timeout=30000", "synchronous=NORMAL"):
                dbapi_conn.execute(f"PRAGMA {pragma}")

        return connect

    def do_begin(self, dbapi_connection: Any) -> None:
        fd = self._writer_fd(dbapi_connection)
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            dbapi_connection.execute("BEGIN IMMEDIATE")
        except BaseException:
            self._release(dbapi_connection)
            raise

    def do_commit(self, dbapi_connection: Any) -> None:
        try:
            super().do_commit(dbapi_connection)
        finally:
            self._release(dbapi_connection)

    def do_rollback(self, dbapi_connection: Any) -> None:
        try:
            super().do_rollback(dbapi_connection)
        finally:
            self._release(dbapi_connection)

    def _writer_fd(self, connection: Any) -> int | None:
        """This pooled connection's own descriptor of the lock file (flock excludes between
        descriptors, so threads of one process queue too)."""
        if self.writer_lock is None:
            return None
        info = _info(connection)
        if info is None:
            return None
        fd = info.get(_WRITER_FD)
        if fd is None:
            fd = info[_WRITER_FD] = os.open(self.writer_lock, os.O_RDWR | os.O_CREAT, 0o600)
        return fd

    def _release(self, connection: Any) -> None:
        info = _info(connection)
        if info is not None and (fd := info.get(_WRITER_FD)) is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)


def _info(connection: Any) -> dict[str, Any] | None:
    """The pool's `info` of a connection; None for the one SQLAlchemy rolls back when it first
    connects, which holds no transaction."""
    try:
        return connection.info
    except (AttributeError, NotImplementedError):
        return None


registry.register("sqlite.operator", __name__, "QueuedSQLiteDialect")


def _close_writer_fd(_dbapi_conn: Any, record: Any) -> None:
    if (fd := record.info.pop(_WRITER_FD, None)) is not None:
        os.close(fd)


def delete_batch(conn: Connection, key: Column[Any], *conditions: ColumnElement[bool], batch: int) -> int:
    """Delete up to `batch` rows of `key`'s table matching `conditions`; returns how many.

    Keys are selected first so no single DELETE holds the store for long (retention runs these in
    short transactions until fewer than a batch remain).
    """
    keys = conn.scalars(select(key).where(*conditions).limit(batch)).all()
    if keys:
        conn.execute(delete(key.table).where(key.in_(keys)))
    return len(keys)


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


def inserted_id(result: CursorResult[Any]) -> int:
    """The integer primary key of the row a single-row INSERT just added."""
    # SQLAlchemy types it Optional for executemany; one row always reports its key.
    key = result.inserted_primary_key
    if key is None:
        raise RuntimeError("the INSERT reported no primary key")
    return key[0]


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest revision (core/migrations); safe from many processes at once."""
    # One transaction for every revision: SQLite's BEGIN IMMEDIATE (make_engine) or the advisory
    # lock taken in env.py makes other processes wait, then find nothing left to do. Alembic's
    # environment is process-global, so threads of one process take turns.
    with _upgrading, engine.begin() as conn:
        config = _alembic_config()
        config.attributes["connection"] = conn
        command.upgrade(config, "head")


def revision_of(engine: Engine) -> str | None:
    """The revision the database is at (None before the first)."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str | None:
    return ScriptDirectory.from_config(_alembic_config()).get_current_head()


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", MIGRATIONS)
    return config


def ensure_db(engine: Engine, migrate: bool = True) -> bool:
    """The schema is current (upgraded once per engine and process when `migrate`); False, logged, if not.

    A store that is down at start must not stop the workers from booting: /healthz then says 503
    and the tables are created on the first request that finds the store back. With `migrate`
    off (MIGRATE_ON_START=false) an outdated schema waits for `flask --app app db upgrade`.
    """
    if engine in _ready:
        return True
    try:
        if migrate:
            upgrade(engine)
        elif (current := revision_of(engine)) != head_revision():
            logger.error(
                "the store's schema is at revision %s, this code needs %s: run `flask --app app db upgrade`",
                current,
                head_revision(),
            )
            return False
    except SQLAlchemyError as exc:
        logger.error("store unreachable, tables not checked yet: %s", exc.__class__.__name__)
        return False
    _ready.add(engine)
    return True


_ready: weakref.WeakSet[Engine] = weakref.WeakSet()


# At most one probe write a second per process: a flood of /livez cannot queue writes behind it.
PROBE_EVERY = 1.0
# SQLite's primary result codes, and PostgreSQL's SQLSTATEs, that mean "this store takes no writes".
_SQLITE_CANNOT_WRITE = {8: "read-only", 10: "disk I/O error", 13: "disk full"}
_POSTGRES_CANNOT_WRITE = {"53100": "disk full", "25006": "read-only", "58030": "disk I/O error"}
# Per engine: the last failure of that kind (monotonic time, reason), and the last probe (time, reason or "").
_write_failures: weakref.WeakKeyDictionary[Engine, tuple[float, str]] = weakref.WeakKeyDictionary()
_probes: weakref.WeakKeyDictionary[Engine, tuple[float, str]] = weakref.WeakKeyDictionary()


def _cannot_write(exc: BaseException | None) -> str:
    """Why `exc` says the store takes no writes ("disk full"); "" for any other error."""
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int):
        return _SQLITE_CANNOT_WRITE.get(code & 0xFF, "")
    state = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)
    return _POSTGRES_CANNOT_WRITE.get(str(state), "") if state else ""


def _note_write_failure(context: Any) -> None:
    """Engine hook: remember a write the store refused for lack of room (or being read-only)."""
    reason = _cannot_write(context.original_exception)
    if reason and context.engine is not None:
        _write_failures[context.engine] = (time.monotonic(), reason)


def cannot_write(engine: Engine, probe: Callable[[Connection], None], every: float = PROBE_EVERY) -> str:
    """ "" when the store takes writes; else why not ("disk full").

    A store that answers reads may still refuse every write (a full disk, a read-only file):
    `probe` makes one small write (it must rewrite a row in place, so it never grows anything),
    at most every `every` seconds, and any write refused in this process since the last
    probe that went through counts as well.
    """
    now = time.monotonic()
    last = _probes.get(engine)
    if last is None or now - last[0] >= every:
        try:
            with engine.begin() as conn:
                probe(conn)
            reason = ""
        except SQLAlchemyError as exc:
            reason = _cannot_write(getattr(exc, "orig", None)) or f"write refused ({exc.__class__.__name__})"
            logger.warning("store write probe failed: %s", reason)
        last = _probes[engine] = (now, reason)
    if last[1]:
        return last[1]
    failure = _write_failures.get(engine)
    return failure[1] if failure is not None and failure[0] >= last[0] else ""


def ping(engine: Engine) -> bool:
    """True when the store answers a trivial query."""
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return True
    except Exception:  # noqa: BLE001 - any failure means "not healthy"
        logger.warning("store ping failed", exc_info=True)
        return False


def newest_first(
    at: Column[Any],
    key: Column[Any],
    before: tuple[float, int] | None,
    since: float | None,
    until: float | None,
    equal: list[tuple[Column[Any], Any]],
) -> list[ColumnElement[bool]]:
    """Conditions for one page of a newest-first log, ordered by (at, key) descending.

    Strictly before the (at, key) `before` (keyset paging: a deep page costs what the first does),
    within [since, until), and each column equal to its value when the value is given.
    """
    conditions = [column == value for column, value in equal if value]
    if before is not None:
        when, row_id = before
        conditions.append(or_(at < when, and_(at == when, key < row_id)))
    if since is not None:
        conditions.append(at >= since)
    if until is not None:
        conditions.append(at < until)
    return conditions


def bucket_counts(
    conn: Connection, column: Column[Any], edges: list[float], *conditions: ColumnElement[bool]
) -> list[int]:
    """Rows whose `column` falls in each [edges[i], edges[i + 1]), in one range scan.

    Portable where grouping by floor(time / 3600) is not (SQLite may lack floor, PostgreSQL
    rounds a float cast to an integer).
    """
    sums = [
        func.coalesce(func.sum(case((and_(column >= lo, column < hi), 1), else_=0)), 0)
        for lo, hi in zip(edges, edges[1:], strict=False)
    ]
    where = [column >= edges[0], column < edges[-1], *conditions]
    return [int(n) for n in conn.execute(select(*sums).where(*where)).one()]
