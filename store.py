"""The one database: engine set-up, every table, and the automatic create/migrate on start.

SQLite (one host, the default) or PostgreSQL (several hosts) with the same code. Times are
stored as UNIX epoch floats so comparisons are the same arithmetic on both databases.
Feature modules define their tables on `metadata` here so `init_db` sees them all.
"""

from __future__ import annotations

import logging
import os
import time
import weakref

from sqlalchemy import (
    Column,
    Engine,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    inspect,
    text,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

logger = logging.getLogger(__name__)

metadata = MetaData()

# Every inbound SMS and what we answered.
messages = Table(
    "messages",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("received_at", Float, nullable=False, index=True),
    # NULL for rows that never reached the idempotency check (rejected, unauthorized, duplicate).
    Column("message_sid", String(64), unique=True),
    Column("phone", String(32), nullable=False, index=True),
    Column("phone_masked", String(32), nullable=False),
    Column("body", Text),
    Column("command", String(32)),
    Column("reply", Text),
    Column("segments", Integer),
    Column("latency_ms", Float),
    Column("outcome", String(16), nullable=False),
    Column("request_id", String(32)),
)

# Fixed-window counters for the `limits` library when no Redis is configured.
rate_limits = Table(
    "rate_limits",
    metadata,
    Column("key", String(255), primary_key=True),
    Column("count", Integer, nullable=False),
    Column("expires_at", Float, nullable=False),
)

# The unsent pages of a long reply, per phone, for MORE.
reply_pages = Table(
    "reply_pages",
    metadata,
    Column("phone", String(32), primary_key=True),
    Column("pages", Text, nullable=False),
    Column("next_page", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
)

# Pending confirmations ("Reply YES to ack 7 alerts"), per phone.
confirmations = Table(
    "confirmations",
    metadata,
    Column("phone", String(32), primary_key=True),
    Column("action", Text, nullable=False),
    Column("expires_at", Float, nullable=False),
)


def now() -> float:
    return time.time()


def make_engine(url: str) -> Engine:
    """An engine for `url`; SQLite gets WAL, a busy timeout and write-ahead locking."""
    parsed = make_url(url)
    # hide_parameters: a logged database error must not carry message bodies or phone numbers.
    if parsed.get_backend_name() != "sqlite":
        connect_args = {"connect_timeout": 5} if parsed.get_backend_name() == "postgresql" else {}
        return create_engine(
            url,
            pool_pre_ping=True,
            pool_size=5,
            max_overflow=5,
            hide_parameters=True,
            connect_args=connect_args,
        )
    if parsed.database and parsed.database != ":memory:":
        os.makedirs(os.path.dirname(os.path.abspath(parsed.database)), exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 30}, hide_parameters=True)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        # Autocommit at the driver level so our BEGIN IMMEDIATE below is the only transaction
        # control: a deferred transaction that later writes can fail with "database is locked"
        # without waiting for the busy timeout.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        # Straight to the driver: this runs for every transaction, and SQLAlchemy's execute
        # machinery around a constant statement costs more than SQLite does.
        conn.connection.dbapi_connection.execute("BEGIN IMMEDIATE")

    return engine


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


def init_db(engine: Engine) -> None:
    """Create missing tables and add missing columns; safe to run from many processes at once."""
    with engine.begin() as conn:
        if is_postgres(engine):
            # Concurrent CREATE TABLE from several gunicorn workers races on pg_type.
            conn.execute(text("SELECT pg_advisory_xact_lock(7263001)"))
        metadata.create_all(conn)
        inspector = inspect(conn)
        for table in metadata.sorted_tables:
            present = {c["name"] for c in inspector.get_columns(table.name)}
            for column in table.columns:
                if column.name not in present:
                    kind = column.type.compile(dialect=conn.dialect)
                    logger.info("migrating: adding %s.%s", table.name, column.name)
                    conn.execute(text(f'ALTER TABLE {table.name} ADD COLUMN "{column.name}" {kind}'))


def ensure_db(engine: Engine) -> bool:
    """init_db once per engine and process; False (logged) while the store is unreachable.

    A store that is down at start must not stop the workers from booting: /healthz then says 503
    and the tables are created on the first request that finds the store back.
    """
    if engine in _ready:
        return True
    try:
        init_db(engine)
    except SQLAlchemyError as exc:
        logger.error("store unreachable, tables not checked yet: %s", exc.__class__.__name__)
        return False
    _ready.add(engine)
    return True


_ready: weakref.WeakSet[Engine] = weakref.WeakSet()


def ping(engine: Engine) -> bool:
    """True when the store answers a trivial query."""
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return True
    except Exception:  # noqa: BLE001 - any failure means "not healthy"
        logger.warning("store ping failed", exc_info=True)
        return False
