"""prepared.py: hot-path statements on the driver, on SQLite and the local PostgreSQL."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import bindparam, create_engine, select, text
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

import prepared
import store
from prepared import Prepared
from tests.servers import POSTGRES_ADMIN_URL, free_port, fresh_postgres_database

KEYS = ["received_at", "message_sid", "phone", "phone_masked", "body", "outcome", "request_id"]
INSERT = Prepared(store.messages.insert().returning(store.messages.c.id), keys=KEYS)
REPLY = Prepared(
    store.messages.update().where(store.messages.c.id == bindparam("row_id")),
    keys=["reply", "latency_ms", "outcome"],
)


def row(sid: str | None, body: str = "status") -> dict:
    return {
        "received_at": time.time(),
        "message_sid": sid,
        "phone": "+15555550100",
        "phone_masked": "+1555***0100",
        "body": body,
        "outcome": "processing",
        "request_id": "r1",
    }


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path):
    drop = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/operator.db"
    else:
        url, drop = fresh_postgres_database()
    engine = store.make_engine(url)
    store.init_db(engine)
    yield engine
    engine.dispose()
    if drop:
        drop()


def stored(engine) -> list:
    with engine.connect() as conn:
        return conn.execute(select(store.messages).order_by(store.messages.c.id)).all()


def test_statements_in_one_transaction_are_committed_together(engine):
    with prepared.write(engine) as tx:
        row_id = INSERT.run(tx, row("SM1", "héllo ünïcode"))[0][0]
        REPLY.run(tx, {"row_id": row_id, "reply": "sys ok", "latency_ms": 12.5, "outcome": "ok"})
    (saved,) = stored(engine)
    assert (saved.id, saved.message_sid, saved.body) == (row_id, "SM1", "héllo ünïcode")
    assert (saved.reply, saved.latency_ms, saved.outcome) == ("sys ok", 12.5, "ok")


def test_a_repeated_message_sid_raises_sqlalchemys_integrity_error_and_stores_nothing(engine):
    with prepared.write(engine) as tx:
        INSERT.run(tx, row("SMdup"))
    with pytest.raises(IntegrityError) as raised, prepared.write(engine) as tx:
        INSERT.run(tx, row(None, "first of the failed transaction"))
        INSERT.run(tx, row("SMdup"))
    # The values are never echoed: they carry phone numbers and bodies.
    assert "+15555550100" not in str(raised.value)
    assert [r.message_sid for r in stored(engine)] == ["SMdup"]
    # The connection went back to the pool usable.
    with prepared.write(engine) as tx:
        INSERT.run(tx, row("SMnext"))
    assert [r.message_sid for r in stored(engine)] == ["SMdup", "SMnext"]


def test_an_exception_of_the_caller_rolls_the_transaction_back(engine):
    with pytest.raises(RuntimeError), prepared.write(engine) as tx:
        INSERT.run(tx, row("SMgone"))
        raise RuntimeError("the command broke")
    assert stored(engine) == []


def test_a_broken_schema_is_a_sqlalchemy_error_not_a_driver_one(engine):
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE messages"))
    with pytest.raises((OperationalError, ProgrammingError)), prepared.write(engine) as tx:
        INSERT.run(tx, row("SM1"))


def test_an_unreachable_store_raises_sqlalchemys_operational_error():
    engine = store.make_engine(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/operator")
    with pytest.raises(OperationalError), prepared.write(engine):
        pass
    engine.dispose()


def test_sqlite_writers_in_threads_wait_for_each_other_instead_of_failing(tmp_path):
    engine = store.make_engine(f"sqlite:///{tmp_path}/operator.db")
    store.init_db(engine)
    errors: list[Exception] = []

    def writer(n: int) -> None:
        try:
            for i in range(25):
                with prepared.write(engine) as tx:
                    INSERT.run(tx, row(f"SM-{n}-{i}"))
        except Exception as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(stored(engine)) == 100
    engine.dispose()


def test_a_connection_dropped_mid_transaction_leaves_the_pool_and_the_next_write_works():
    url, drop = fresh_postgres_database()
    # No pre-ping: a dead connection handed back to the pool would fail the next write.
    engine = create_engine(url, pool_size=1, max_overflow=0)
    store.init_db(engine)
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with pytest.raises(OperationalError), prepared.write(engine) as tx:
            INSERT.run(tx, row("SM1"))
            with admin.connect() as conn:
                pid = tx.raw.driver_connection.info.backend_pid
                conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            INSERT.run(tx, row("SM2"))
        with prepared.write(engine) as tx:
            INSERT.run(tx, row("SM3"))
        assert [r.message_sid for r in stored(engine)] == ["SM3"]
    finally:
        engine.dispose()
        admin.dispose()
        drop()
