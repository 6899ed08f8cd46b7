"""The store on SQLite and the local PostgreSQL: migrations, concurrent writers, health."""

from __future__ import annotations

import json
import multiprocessing
import signal
import subprocess
import sys
import threading

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import IntegrityError

from app import create_app
from config import Settings
from conversation import continuations as continuations_module
from conversation.continuations import continuations
from core import db
from inbound import audit
from rate_limiter import RateLimiter, SQLStorage, rate_limits
from tests.support.paths import PAYLOADS, REPO
from tests.support.servers import fresh_postgres_database


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
    engine = db.make_engine(database_url)
    yield engine
    engine.dispose()


# One row in each table of the schema as it stood before Alembic, as the old code wrote them.
OLD_ROWS = {
    "messages": "INSERT INTO messages (received_at, message_sid, phone, phone_masked, body, outcome) "
    "VALUES (1, 'SMold', '+15555550100', '+1555***0100', 'status', 'ok')",
    "rate_limits": "INSERT INTO rate_limits (key, count, expires_at) VALUES ('k', 3, 9e9)",
    "reply_pages": "INSERT INTO reply_pages (phone, pages, next_page, created_at) "
    "VALUES ('+15555550100', '[\"a\", \"b\"]', 1, 2)",
    "confirmations": "INSERT INTO confirmations (phone, action, expires_at) VALUES ('+15555550100', '{}', 3)",
    "outbox": "INSERT INTO outbox (to_number, body, segments, kind, status, created_at, not_before, attempts) "
    "VALUES ('+15555550100', 'ALERT #1', 1, 'alert', 'sent', 4, 4, 1)",
    "sms_pacing": "INSERT INTO sms_pacing (key, next_at) VALUES ('outbound', 5)",
    "rule_states": "INSERT INTO rule_states (rule, state, next_eval_at, failures, notice_sent) "
    "VALUES ('cpu', 'firing', 0, 0, 0)",
    "alerts": "INSERT INTO alerts (source, key, name, summary, severity, labels, status, started_at, last_seen,"
    " size, places, transition) VALUES ('rule', 'cpu', 'cpu', '', '', '{}', 'firing', 6, 6, 1, '', 'FIRING')",
    "alert_events": "INSERT INTO alert_events (event_key, alert_id, received_at) VALUES ('am:x', 1, 7)",
    "monitor_cache": "INSERT INTO monitor_cache (key, value, expires_at) VALUES ('m', '{}', 8)",
}


def _create_old_schema(engine) -> None:
    """The tables exactly as the code before Alembic created them (dumped from that code)."""
    dump = (PAYLOADS / f"schema_before_alembic.{engine.dialect.name}.sql").read_text()
    with engine.begin() as conn:
        raw = conn.connection.dbapi_connection
        if engine.dialect.name == "sqlite":
            raw.executescript(dump)
        else:
            conn.exec_driver_sql(dump)
        for statement in OLD_ROWS.values():
            conn.exec_driver_sql(statement)


def test_a_new_database_gets_every_table_at_the_newest_revision(engine):
    db.upgrade(engine)
    db.upgrade(engine)
    names = set(inspect(engine).get_table_names())
    assert set(db.metadata.tables) <= names
    assert db.revision_of(engine) == db.head_revision()


def test_a_database_made_before_migrations_is_upgraded_without_losing_a_row(engine):
    _create_old_schema(engine)
    assert db.revision_of(engine) is None
    db.upgrade(engine)
    assert db.revision_of(engine) == db.head_revision()
    with engine.connect() as conn:
        for table in OLD_ROWS:
            name = "continuations" if table == "reply_pages" else table
            assert conn.execute(text(f"SELECT count(*) FROM {name}")).scalar_one() == 1, name
        row = conn.execute(select(continuations)).one()
    assert (row.phone, json.loads(row.parts), row.next_part) == ("+15555550100", ["a", "b"], 1)
    # The upgraded database serves the code: a MORE continuation reads back.
    assert continuations_module.take_next(engine, "+15555550100") is None  # created_at=2: long stale


def test_the_tables_in_code_match_what_the_migrations_create(engine):
    """A column added to a Table without a revision would exist in tests and never in production."""
    db.upgrade(engine)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn)
        differences = compare_metadata(context, db.metadata)
    assert differences == []


def _upgrade(url: str) -> str | None:
    engine = db.make_engine(url)
    db.upgrade(engine)
    revision = db.revision_of(engine)
    engine.dispose()
    return revision


@pytest.mark.slow  # a pool of 4 spawned processes
def test_upgrading_from_many_workers_at_once_does_not_fail(database_url):
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        revisions = pool.map(_upgrade, [database_url] * 4)
    assert revisions == [db.head_revision()] * 4


def test_with_migrations_off_at_start_flask_db_upgrade_brings_the_database_up(tmp_path, database_url):
    engine = db.make_engine(database_url)
    _create_old_schema(engine)
    settings = Settings(
        twilio_auth_token="t",
        database_url=database_url,
        log_dir=str(tmp_path / "logs"),
        migrate_on_start=False,
    )
    app = create_app(settings)
    try:
        client = app.test_client()
        assert db.revision_of(engine) is None
        assert client.get("/livez").status_code == 503
        result = app.test_cli_runner().invoke(args=["db", "upgrade"])
        assert result.exit_code == 0, result.output
        assert f"at revision {db.head_revision()}" in result.output
        assert db.revision_of(engine) == db.head_revision()
        assert client.get("/livez").status_code == 200
    finally:
        app.extensions["operator"].close()
        engine.dispose()


def test_a_message_row_keeps_every_field(engine):
    db.upgrade(engine)
    row_id = audit.record(engine, "+15555550100", "processing", sid="SM1", body="status ünïcode")
    with engine.begin() as conn:
        conn.execute(
            audit.messages.update()
            .where(audit.messages.c.id == row_id)
            .values(command="status", reply="sys ok", segments=1, latency_ms=12.5, outcome="ok")
        )
    with engine.connect() as conn:
        row = conn.execute(select(audit.messages).where(audit.messages.c.id == row_id)).one()
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

    db.upgrade(engine)
    audit.record(engine, "+15555550100", "processing", sid="SMdup")
    with pytest.raises(IntegrityError):
        audit.record(engine, "+15555550100", "processing", sid="SMdup")
    # Rows without a MessageSid (rejected, unauthorized, duplicate) never collide.
    audit.record(engine, "+15555550100", "rejected")
    audit.record(engine, "+15555550100", "rejected")


def _writer(args: tuple[str, int]) -> int:
    """One process hammering the store the way a gunicorn worker does."""
    url, worker = args
    engine = db.make_engine(url)
    db.upgrade(engine)
    limiter = RateLimiter(SQLStorage(engine), "1000 per hour", "sms")
    allowed = 0
    for i in range(40):
        audit.record(engine, "+15555550100", "processing", sid=f"SM-{worker}-{i}", body="x")
        allowed += limiter.hit("+15555550100").allowed
    engine.dispose()
    return allowed


@pytest.mark.slow  # a pool of 4 spawned processes
def test_several_processes_write_at_once_without_database_is_locked(database_url):
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        allowed = pool.map(_writer, [(database_url, w) for w in range(4)])
    assert sum(allowed) == 160
    engine = db.make_engine(database_url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM messages")).scalar_one() == 160
        assert conn.execute(select(rate_limits.c.count)).scalar_one() == 160
    engine.dispose()


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(tmp_path):
    engine = db.make_engine(f"sqlite:///{tmp_path}/wal.db")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000
    engine.dispose()


def test_ping_says_whether_the_store_answers(engine):
    assert db.ping(engine)
    closed = db.make_engine("postgresql+psycopg://postgres@127.0.0.1:1/none")
    assert not db.ping(closed)
    assert not db.ensure_db(closed)
    closed.dispose()


def test_ensure_db_creates_the_tables_once_the_store_is_reachable(engine):
    assert db.ensure_db(engine)
    assert "messages" in inspect(engine).get_table_names()


def test_two_long_replies_to_one_number_at_once_both_keep_their_parts(engine):
    # Two texts from one number answered at once: the second's parts are written while the
    # first's are still uncommitted. On PostgreSQL that used to fail the second text (a 500).
    db.upgrade(engine)
    phone = "+15555550100"
    errors: list[BaseException] = []

    def second() -> None:
        try:
            with engine.begin() as conn:
                continuations_module.save(conn, phone, ["b1", "b2"])
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            errors.append(exc)

    with engine.begin() as conn:
        continuations_module.save(conn, phone, ["a1", "a2"])
        other = threading.Thread(target=second)
        other.start()
        other.join(0.5)  # blocked on the first's row (PostgreSQL) or on its write lock (SQLite)
    other.join(30)
    assert errors == []
    assert continuations_module.take_next(engine, phone) == "b2"


# Holds a SQLite write transaction open, as a worker killed in the middle of one would.
_HOLDER = """
import sys, time
from sqlalchemy import text
from core import db
engine = db.make_engine(sys.argv[1])
with engine.begin() as conn:
    conn.execute(text("INSERT INTO pending_writes VALUES ('held')"))
    print("holding", flush=True)
    time.sleep(600)
"""


def _write_from_a_thread(engine, value):
    """Write `value` in a thread; whether it got in within a minute (not stuck behind a dead writer)."""

    def write():
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO pending_writes VALUES (:v)"), {"v": value})

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    writer.join(60)
    return not writer.is_alive()


def test_a_sqlite_writer_killed_inside_its_transaction_does_not_hold_the_store(tmp_path):
    url = f"sqlite:///{tmp_path}/operator.db"
    engine = db.make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE pending_writes (value TEXT PRIMARY KEY)"))
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, url], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "holding"
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert _write_from_a_thread(engine, "after")
    with engine.connect() as conn:
        # The killed writer's row was never committed.
        assert conn.execute(text("SELECT value FROM pending_writes")).scalars().all() == ["after"]
    engine.dispose()


def test_a_sqlite_transaction_that_fails_lets_the_next_writer_in(tmp_path):
    url = f"sqlite:///{tmp_path}/operator.db"
    engine, other = db.make_engine(url), db.make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE pending_writes (value TEXT PRIMARY KEY)"))
        conn.execute(text("INSERT INTO pending_writes VALUES ('first')"))
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(text("INSERT INTO pending_writes VALUES ('first')"))
    assert _write_from_a_thread(other, "second")
    assert _write_from_a_thread(engine, "third")
    with other.connect() as conn:
        assert sorted(conn.execute(text("SELECT value FROM pending_writes")).scalars()) == [
            "first",
            "second",
            "third",
        ]
    engine.dispose()
    other.dispose()
