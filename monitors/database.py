"""A database's health from fixed, read-only SQL: PostgreSQL, MySQL/MariaDB or SQLite.

No text from an SMS ever reaches SQL: every statement here is a constant, and the session is
read-only where the server supports it.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError, OperationalError, ProgrammingError, SQLAlchemyError

from config import ConfigError, Settings
from monitors.base_monitor import BaseMonitor, MonitorError
from monitors.http import clip

logger = logging.getLogger(__name__)

# `value()` names for alert rules.
METRICS = ("up", "connections", "max_connections", "connections_percent", "longest_query_seconds",
           "replication_lag_seconds", "size_bytes")  # fmt: skip
# The status line mentions a long query from this age on.
LONG_QUERY = 30.0

PG = {
    "version": "SHOW server_version",
    "connections": "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'",
    "max": "SHOW max_connections",
    "longest": (
        "SELECT pid, EXTRACT(EPOCH FROM clock_timestamp() - query_start), left(query, 60)"
        " FROM pg_stat_activity WHERE state = 'active' AND pid <> pg_backend_pid()"
        " AND backend_type = 'client backend' AND query_start IS NOT NULL ORDER BY query_start LIMIT 1"
    ),
    "size": "SELECT pg_database_size(current_database())",
    "recovery": "SELECT pg_is_in_recovery()",
    "replica_lag": "SELECT EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())",
    "primary_lag": (
        "SELECT count(*), COALESCE(max(EXTRACT(EPOCH FROM replay_lag)), 0) FROM pg_stat_replication"
    ),
}
MY = {
    "version": "SELECT VERSION()",
    "connections": "SHOW GLOBAL STATUS LIKE 'Threads_connected'",
    "max": "SELECT @@max_connections",
    "longest": (
        "SELECT ID, TIME, LEFT(INFO, 60) FROM information_schema.PROCESSLIST"
        " WHERE COMMAND = 'Query' AND ID <> CONNECTION_ID() ORDER BY TIME DESC LIMIT 1"
    ),
    "size": (
        "SELECT COALESCE(SUM(data_length + index_length), 0) FROM information_schema.TABLES"
        " WHERE table_schema = DATABASE()"
    ),
}


def engine_for(url: str, timeout: float) -> Engine:
    """An engine with our drivers, connect/statement timeouts and a read-only session."""
    try:
        parsed = make_url(url)
    except Exception:  # noqa: BLE001 - any parse failure is a bad setting
        raise ConfigError("MONITOR_DB_URL is not a SQLAlchemy URL like postgresql://user@host/db") from None
    backend = parsed.get_backend_name()
    seconds = max(1, int(timeout))
    if backend == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
        args = {
            "connect_timeout": seconds,
            "options": f"-c statement_timeout={int(timeout * 1000)} -c default_transaction_read_only=on",
            "application_name": "operator-monitor",
        }
        return create_engine(parsed, connect_args=args, pool_size=2, max_overflow=2, pool_pre_ping=True)
    if backend in ("mysql", "mariadb"):
        parsed = parsed.set(drivername="mysql+pymysql")
        args = {
            "connect_timeout": seconds,
            "read_timeout": seconds,
            "write_timeout": seconds,
            "init_command": "SET SESSION TRANSACTION READ ONLY",
        }
        return create_engine(parsed, connect_args=args, pool_size=2, max_overflow=2, pool_pre_ping=True)
    if backend == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            raise ConfigError("MONITOR_DB_URL: a SQLite monitor needs a file path")
        path = os.path.abspath(parsed.database)
        return create_engine(f"sqlite:///file:{path}?mode=ro&uri=true", connect_args={"timeout": seconds})
    raise ConfigError(f"MONITOR_DB_URL: {backend} is not supported (postgresql, mysql, mariadb, sqlite)")


class DatabaseMonitor(BaseMonitor):
    name = "db"
    description = "database connections, longest query, size and replication"

    def __init__(self, url: str, timeout: float = 4.0):
        super().__init__(timeout)
        self.engine = engine_for(url, timeout)
        self.kind = self.engine.dialect.name
        self.identity = self.engine.url.render_as_string(hide_password=True)

    @classmethod
    def from_settings(cls, settings: Settings) -> DatabaseMonitor:
        return cls(settings.monitor_db_url, settings.monitor_timeout)

    def readings(self) -> dict[str, Any]:
        """Everything `db` shows, from fixed statements."""
        try:
            with self.engine.connect() as conn:
                if self.kind == "postgresql":
                    return _postgres(conn)
                if self.kind == "mysql":
                    return _mysql(conn)
                return self._sqlite(conn)
        except OperationalError as exc:
            reason = _reason(exc)
            raise MonitorError(reason, permanent=reason in ("auth refused", "database not found")) from None
        except DBAPIError as exc:
            raise MonitorError(f"query refused: {clip(str(exc.orig), 60)}", permanent=True) from None

    def _check(self) -> str:
        r = self.readings()
        if self.kind == "sqlite":
            return f"ok {_size(r['size_bytes'])} {r['pages']} pages"
        line = f"ok {r['connections']}/{r['max_connections']} conn"
        if r["longest_query_seconds"] >= LONG_QUERY:
            line += f" longest {r['longest_query_seconds']:.0f}s"
        if r.get("replication_lag_seconds") is not None:
            line += f" lag {r['replication_lag_seconds']:.0f}s"
        return line

    def _query(self, what: str, args: list[str]) -> str:
        r = self.readings()
        if self.kind == "sqlite":
            return (
                f"db up, SQLite {r['version']}, {_size(r['size_bytes'])}, {r['pages']} pages"
                f" ({r['free_pages']} free)"
            )
        parts = [f"db up, {r['version']}", f"conn {r['connections']}/{r['max_connections']}"]
        if r["longest"]:
            pid, seconds, sql = r["longest"]
            parts.append(f"longest {seconds:.0f}s pid {pid}: {clip(sql or '?', 40)}")
        else:
            parts.append("no running queries")
        parts.append(f"size {_size(r['size_bytes'])}")
        if r.get("replication"):
            parts.append(r["replication"])
        return " | ".join(parts)

    def _value(self, query: str) -> float | None:
        name = query.strip().lower()
        if name not in METRICS:
            raise MonitorError(f"db values: {', '.join(METRICS)}", permanent=True)
        if name == "up":
            try:
                self.readings()
            except MonitorError as exc:
                if exc.permanent:
                    raise
                return 0.0
            return 1.0
        value = self.readings().get(name)
        return None if value is None else float(value)

    def _sqlite(self, conn: Connection) -> dict[str, Any]:
        pages = conn.execute(text("PRAGMA page_count")).scalar_one()
        page_size = conn.execute(text("PRAGMA page_size")).scalar_one()
        free = conn.execute(text("PRAGMA freelist_count")).scalar_one()
        database = self.engine.url.database
        assert database is not None  # engine_for refuses a SQLite URL without a file
        path = database.removeprefix("file:").split("?")[0]
        return {
            "version": conn.execute(text("SELECT sqlite_version()")).scalar_one(),
            "pages": pages,
            "free_pages": free,
            "size_bytes": os.path.getsize(path) if os.path.exists(path) else pages * page_size,
            "longest_query_seconds": 0.0,
        }

    def close(self) -> None:
        self.engine.dispose()


def _postgres(conn: Connection) -> dict[str, Any]:
    # Every statement in PG but "longest" gives exactly one row.
    one = lambda key: conn.execute(text(PG[key])).scalar_one()  # noqa: E731
    connections, max_connections = int(one("connections")), int(one("max"))
    longest = conn.execute(text(PG["longest"])).first()
    out = {
        "version": "PostgreSQL " + str(one("version")).split()[0],
        "connections": connections,
        "max_connections": max_connections,
        "connections_percent": 100.0 * connections / max_connections,
        "longest": tuple(longest) if longest else None,
        "longest_query_seconds": float(longest[1]) if longest else 0.0,
        "size_bytes": int(one("size")),
        "replication_lag_seconds": None,
    }
    if one("recovery"):
        lag = one("replica_lag")
        out["replication_lag_seconds"] = float(lag) if lag is not None else None
        out["replication"] = (
            f"replica, lag {float(lag):.0f}s" if lag is not None else "replica, nothing replayed"
        )
    else:
        replicas, lag = conn.execute(text(PG["primary_lag"])).one()
        if replicas:
            out["replication_lag_seconds"] = float(lag)
            out["replication"] = f"{replicas} replica(s), lag {float(lag):.0f}s"
    return out


def _mysql(conn: Connection) -> dict[str, Any]:
    connections = int(conn.execute(text(MY["connections"])).one()[1])
    max_connections = int(conn.execute(text(MY["max"])).scalar_one())
    longest = conn.execute(text(MY["longest"])).first()
    out = {
        "version": _mysql_version(str(conn.execute(text(MY["version"])).scalar())),
        "connections": connections,
        "max_connections": max_connections,
        "connections_percent": 100.0 * connections / max_connections,
        "longest": (longest[0], float(longest[1]), longest[2]) if longest else None,
        "longest_query_seconds": float(longest[1]) if longest else 0.0,
        "size_bytes": int(conn.execute(text(MY["size"])).scalar_one()),
        "replication_lag_seconds": None,
    }
    row = _replica_status(conn)
    if row is not None:
        lag = row.get("Seconds_Behind_Source", row.get("Seconds_Behind_Master"))
        out["replication_lag_seconds"] = float(lag) if lag is not None else None
        out["replication"] = f"replica, lag {lag}s" if lag is not None else "replica, NOT replicating"
    return out


def _replica_status(conn: Connection) -> dict[str, Any] | None:
    # MariaDB >= 10.5 and MySQL >= 8.0.22 know REPLICA; older servers only SLAVE.
    for statement in ("SHOW REPLICA STATUS", "SHOW SLAVE STATUS"):
        try:
            row = conn.execute(text(statement)).mappings().first()
        except (ProgrammingError, OperationalError):
            continue
        return dict(row) if row else None
    return None


def _mysql_version(raw: str) -> str:
    number = raw.split("-")[0]
    return f"MariaDB {number}" if "mariadb" in raw.lower() else f"MySQL {number}"


def _reason(exc: SQLAlchemyError) -> str:
    message = str(getattr(exc, "orig", exc)).lower()
    if "password" in message or "access denied" in message or "authentication" in message:
        return "auth refused"
    if "timeout" in message or "timed out" in message or "statement timeout" in message:
        return "timeout"
    if "could not translate host" in message or "name or service not known" in message:
        return "bad URL: host not found"
    if "refused" in message or "can't connect" in message or "could not connect" in message:
        return "unreachable: connection refused"
    if "does not exist" in message or "unknown database" in message or "unable to open" in message:
        return "database not found"
    return clip(message, 60)


def _size(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:.0f}{unit}" if unit == "B" else f"{size:.1f}{unit}"
        size /= 1024
    return f"{size:.1f}TB"
