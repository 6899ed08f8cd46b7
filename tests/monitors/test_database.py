from __future__ import annotations

import sqlite3
import threading
import time

import pytest
from sqlalchemy import create_engine, text

from app import create_app
from config import ConfigError
from monitors.database import METRICS, DatabaseMonitor
from tests.support.apps import with_settings
from tests.support.phones import Phone
from tests.support.servers import (
    MARIADB_ADMIN_URL,
    POSTGRES_ADMIN_URL,
    free_port,
    fresh_postgres_database,
    unavailable,
)


def _reachable(url: str) -> None:
    engine = create_engine(url, connect_args={"connect_timeout": 2})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001
        unavailable(f"{url.split('://')[0]} not reachable: {exc.__class__.__name__}")
    finally:
        engine.dispose()


@pytest.fixture
def postgres_url():
    url, drop = fresh_postgres_database()
    yield url
    drop()


@pytest.fixture
def mariadb_url():
    _reachable(MARIADB_ADMIN_URL)
    return MARIADB_ADMIN_URL


class Sleeper:
    """A query that runs for a while on its own connection, cancelled at the end."""

    def __init__(self, url: str, sql: str, cancel: str):
        self.engine = create_engine(url)
        self.sql, self.cancel_sql = sql, cancel
        self.started = threading.Event()

    def __enter__(self):
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        self.started.wait(5)
        return self

    def _run(self):
        with self.engine.connect() as conn:
            self.pid = conn.execute(
                text("SELECT pg_backend_pid()" if "pg_" in self.sql else "SELECT CONNECTION_ID()")
            ).scalar()
            self.started.set()
            try:
                conn.execute(text(self.sql))
            except Exception:  # noqa: BLE001 - cancelled on purpose
                pass

    def __exit__(self, *exc):
        with self.engine.connect() as conn:
            conn.execute(text(self.cancel_sql.format(pid=self.pid)))
        self.thread.join(10)
        self.engine.dispose()


def _wait_for_longest(monitor: DatabaseMonitor, needle: str) -> str:
    for _ in range(50):
        result = monitor.query("summary")
        if needle in result.text and "longest 0s" not in result.text:
            return result.text
        time.sleep(0.1)
    return result.text


def test_postgres_shows_a_long_running_query_as_the_longest(postgres_url):
    monitor = DatabaseMonitor(postgres_url.replace("+psycopg", ""))
    try:
        with Sleeper(postgres_url, "SELECT pg_sleep(30)", "SELECT pg_cancel_backend({pid})") as sleeper:
            time.sleep(1.1)
            reply = _wait_for_longest(monitor, "pg_sleep")
            assert f"pid {sleeper.pid}: SELECT pg_sleep(30)" in reply
            assert monitor.value("longest_query_seconds").data["value"] >= 1
    finally:
        monitor.close()
    assert reply.startswith("db up, PostgreSQL ")
    assert "conn " in reply and "size " in reply


def test_postgres_connections_are_counted_against_max_connections(postgres_url):
    monitor = DatabaseMonitor(postgres_url)
    engine = create_engine(POSTGRES_ADMIN_URL)
    with engine.connect() as conn:
        expected_max = int(conn.execute(text("SHOW max_connections")).scalar())
    engine.dispose()
    try:
        result = monitor.check()
        assert result.ok, result.error
        connections = monitor.value("connections").data["value"]
        assert connections >= 1
        assert monitor.value("max_connections").data["value"] == expected_max
        assert result.text.startswith(f"ok {connections:.0f}/{expected_max} conn")
        # A primary without replicas has no lag to report.
        assert monitor.value("replication_lag_seconds").data["value"] is None
    finally:
        monitor.close()


def test_mariadb_shows_a_sleeping_query_as_the_longest(mariadb_url):
    monitor = DatabaseMonitor(mariadb_url.replace("+pymysql", ""))
    try:
        with Sleeper(mariadb_url, "SELECT SLEEP(30)", "KILL QUERY {pid}") as sleeper:
            time.sleep(1.2)
            reply = _wait_for_longest(monitor, "SLEEP")
            assert f"pid {sleeper.pid}: SELECT SLEEP(30)" in reply
            assert monitor.value("longest_query_seconds").data["value"] >= 1
    finally:
        monitor.close()
    assert reply.startswith("db up, MariaDB ")


def test_mariadb_status_line_has_connections_and_max(mariadb_url):
    monitor = DatabaseMonitor(mariadb_url)
    try:
        result = monitor.check()
        assert result.ok, result.error
        assert result.text.endswith(f"/{monitor.value('max_connections').data['value']:.0f} conn")
    finally:
        monitor.close()


def test_sqlite_shows_version_size_and_pages(tmp_path):
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (x TEXT)")
        conn.executemany("INSERT INTO t VALUES (?)", [("x" * 1000,)] * 200)
    monitor = DatabaseMonitor(f"sqlite:///{path}")
    try:
        reply = monitor.query("summary").text
        assert reply.startswith(f"db up, SQLite {sqlite3.sqlite_version}")
        assert monitor.value("size_bytes").data["value"] == path.stat().st_size
        assert monitor.check().text.startswith("ok ")
    finally:
        monitor.close()


def test_the_sqlite_monitor_never_creates_a_missing_file(tmp_path):
    monitor = DatabaseMonitor(f"sqlite:///{tmp_path}/missing.db")
    result = monitor.check()
    monitor.close()
    assert not result.ok
    assert not (tmp_path / "missing.db").exists()


def test_an_unreachable_database_is_down_not_an_error_page():
    monitor = DatabaseMonitor(f"postgresql://postgres@127.0.0.1:{free_port()}/postgres", timeout=2)
    result = monitor.check()
    assert not result.ok and result.error == "unreachable: connection refused"
    assert monitor.value("up").data["value"] == 0.0
    monitor.close()


def test_a_missing_postgres_database_is_named(postgres_url):
    monitor = DatabaseMonitor(postgres_url.rsplit("/", 1)[0] + "/no_such_db_here", timeout=2)
    result = monitor.check()
    monitor.close()
    assert not result.ok and result.error == "database not found" and result.permanent


@pytest.mark.parametrize(
    "url, problem", [("nonsense", "SQLAlchemy URL"), ("oracle://u@h/db", "not supported")]
)
def test_a_bad_monitor_db_url_is_refused_at_start(url, problem):
    with pytest.raises(ConfigError, match=problem):
        DatabaseMonitor(url)


def test_value_names_are_listed_when_an_unknown_one_is_asked(tmp_path):
    monitor = DatabaseMonitor(f"sqlite:///{tmp_path}/x.db")
    result = monitor.value("DROP TABLE users")
    monitor.close()
    assert not result.ok and all(name in result.error for name in METRICS)


def test_words_after_db_never_reach_sql(postgres_url, settings):
    engine = create_engine(postgres_url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE important (x int)"))
    app = create_app(with_settings(settings, monitor_db_url=postgres_url))
    phone = Phone(app.test_client())
    try:
        reply = phone.text("db; DROP TABLE important; --")
        assert reply.startswith("db up, PostgreSQL")
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM important")).scalar() == 0
    finally:
        app.extensions["operator"].close()
        engine.dispose()


def test_the_monitor_session_is_read_only(postgres_url):
    monitor = DatabaseMonitor(postgres_url)
    with monitor.engine.connect() as conn:
        assert conn.execute(text("SHOW default_transaction_read_only")).scalar() == "on"
    monitor.close()
