"""Finding the real servers tests need: use them, or skip with a reason (fail under CI=true)."""

from __future__ import annotations

import os
import socket
import uuid
from contextlib import closing

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"

POSTGRES_ADMIN_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
MARIADB_ADMIN_URL = os.environ.get("TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def unavailable(reason: str) -> None:
    """Skip the test locally; under CI a missing server is a failure."""
    if IN_CI:
        pytest.fail(f"required server unavailable under CI: {reason}")
    pytest.skip(reason)


def free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def fresh_postgres_database() -> tuple[str, callable]:
    """A new empty PostgreSQL database; returns (url, drop)."""
    from sqlalchemy import create_engine, text

    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = "operator_test_" + uuid.uuid4().hex[:10]
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001
        admin.dispose()
        unavailable(f"PostgreSQL not reachable at {POSTGRES_ADMIN_URL}: {exc.__class__.__name__}")
    url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + "/" + name

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return url, drop


def redis_or_skip() -> str:
    """REDIS_URL of a reachable Redis (database 15, flushed) or skip."""
    try:
        import redis

        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
        client.flushdb()
        client.close()
    except Exception as exc:  # noqa: BLE001
        unavailable(f"Redis not reachable at {REDIS_URL}: {exc.__class__.__name__}")
    return REDIS_URL
