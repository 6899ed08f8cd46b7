"""store.py on SQLite and the local PostgreSQL: create, migrate, concurrent writers, health."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, inspect, select, text

import inbound
import store
from rate_limiter import RateLimiter, SQLStorage
from tests.servers import fresh_postgres_database


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/nested/dir/operator.db"
        return
    url, drop = fresh_postgres_database()
    yield url
    drop()


@pytest.fixture
def engine(database_url):
    engine = store.make_engine(database_url)
    yield engine
    engine.dispose()


def test_init_db_creates_every_table_and_is_safe_to_repeat(engine):
    store.init_db(engine)
    store.init_db(engine)
    names = set(inspect(engine).get_table_names())
    assert {"messages", "rate_limits", "reply_pages", "confirmations"} <= names


def test_init_db_from_many_workers_at_once_does_not_fail(database_url):
    engines = [store.make_engine(database_url) for _ in range(6)]
    try:
        with ThreadPoolExecutor(6) as pool:
            list(pool.map(store.init_db, engines))
        assert "messages" in inspect(engines[0]).get_table_names()
    finally:
        for engine in engines:
            engine.dispose()


def test_init_db_adds_a_column_missing_from_an_older_table(engine):
    old = MetaData()
    Table(
        "messages",
        old,
        Column("id", Integer, primary_key=True),
        Column("received_at", store.Float, nullable=False),
        Column("message_sid", String(64), unique=True),
        Column("phone", String(32), nullable=False),
        Column("phone_masked", String(32), nullable=False),
        Column("outcome", String(16), nullable=False),
    )
    old.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO messages (received_at, phone, phone_masked, outcome) VALUES (1, 'p', 'm', 'ok')"
            )
        )
    store.init_db(engine)
    columns = {c["name"] for c in inspect(engine).get_columns("messages")}
    assert {"body", "command", "reply", "segments", "latency_ms", "request_id"} <= columns
    with engine.connect() as conn:
        row = conn.execute(select(store.messages)).one()
    assert row.outcome == "ok" and row.reply is None


def test_a_message_row_keeps_every_field(engine):
    store.init_db(engine)
    row_id = inbound.record(engine, "+15555550100", "processing", sid="SM1", body="status ünïcode")
    with engine.begin() as conn:
        conn.execute(
            store.messages.update()
            .where(store.messages.c.id == row_id)
            .values(command="status", reply="sys ok", segments=1, latency_ms=12.5, outcome="ok")
        )
    with engine.connect() as conn:
        row = conn.execute(select(store.messages).where(store.messages.c.id == row_id)).one()
    assert row.phone == "+15555550100" and row.phone_masked == "+1555***0100"
    assert (row.message_sid, row.body, row.command, row.reply) == (
        "SM1",
        "status ünïcode",
        "status",
        "sys ok",
    )
    assert (row.segments, row.latency_ms, row.outcome) == (1, 12.5, "ok")
    assert row.received_at > 1.7e9


def test_a_message_sid_is_stored_once(engine):
    from sqlalchemy.exc import IntegrityError

    store.init_db(engine)
    inbound.record(engine, "+15555550100", "processing", sid="SMdup")
    with pytest.raises(IntegrityError):
        inbound.record(engine, "+15555550100", "processing", sid="SMdup")
    # Rows without a MessageSid (rejected, unauthorized, duplicate) never collide.
    inbound.record(engine, "+15555550100", "rejected")
    inbound.record(engine, "+15555550100", "rejected")


def _writer(args: tuple[str, int]) -> int:
    """One process hammering the store the way a gunicorn worker does."""
    url, worker = args
    engine = store.make_engine(url)
    store.init_db(engine)
    limiter = RateLimiter(SQLStorage(engine), "1000 per hour", "sms")
    allowed = 0
    for i in range(40):
        inbound.record(engine, "+15555550100", "processing", sid=f"SM-{worker}-{i}", body="x")
        allowed += limiter.hit("+15555550100").allowed
    engine.dispose()
    return allowed


def test_several_processes_write_at_once_without_database_is_locked(database_url):
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        allowed = pool.map(_writer, [(database_url, w) for w in range(4)])
    assert sum(allowed) == 160
    engine = store.make_engine(database_url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM messages")).scalar_one() == 160
        assert conn.execute(select(store.rate_limits.c.count)).scalar_one() == 160
    engine.dispose()


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(tmp_path):
    engine = store.make_engine(f"sqlite:///{tmp_path}/wal.db")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000
    engine.dispose()


def test_ping_says_whether_the_store_answers(engine):
    assert store.ping(engine)
    closed = store.make_engine("postgresql+psycopg://postgres@127.0.0.1:1/none")
    assert not store.ping(closed)
    assert not store.ensure_db(closed)
    closed.dispose()


def test_ensure_db_creates_the_tables_once_the_store_is_reachable(engine):
    assert store.ensure_db(engine)
    assert "messages" in inspect(engine).get_table_names()
