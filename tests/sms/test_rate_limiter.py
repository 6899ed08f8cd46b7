"""rate_limiter.py: the same limits arithmetic over our SQL storage (SQLite, PostgreSQL) and Redis."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from prometheus_client import REGISTRY

from core import db
from rate_limiter import RateLimiter, SQLStorage, make_storage
from tests.support.apps import app_with, with_settings
from tests.support.phones import Phone
from tests.support.servers import free_port, fresh_postgres_database, port_open, redis_or_skip, unavailable

PHONE = "+15555550100"


@pytest.fixture(params=["sqlite", "postgresql", "redis"])
def storage(request, tmp_path):
    if request.param == "redis":
        yield make_storage(redis_or_skip(), None)
        return
    drop = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/limits.db"
    else:
        url, drop = fresh_postgres_database()
    engine = db.make_engine(url)
    db.upgrade(engine)
    yield make_storage("", engine)
    engine.dispose()
    if drop:
        drop()


def test_it_allows_exactly_the_limit_then_notifies_once(storage):
    limiter = RateLimiter(storage, "3 per 5 minutes", "sms")
    decisions = [limiter.hit(PHONE) for _ in range(6)]
    assert [d.allowed for d in decisions] == [True, True, True, False, False, False]
    assert [d.notify for d in decisions[3:]] == [True, False, False]
    assert 200 < decisions[3].retry_after <= 300


def test_concurrent_hits_never_let_more_through_than_the_limit(storage):
    limiter = RateLimiter(storage, "10 per hour", "sms")
    with ThreadPoolExecutor(8) as pool:
        decisions = list(pool.map(lambda _: limiter.hit(PHONE), range(40)))
    assert sum(d.allowed for d in decisions) == 10
    assert sum(d.notify for d in decisions) == 1


def test_each_number_and_namespace_has_its_own_counter(storage):
    sms = RateLimiter(storage, "1 per minute", "sms")
    other = RateLimiter(storage, "1 per minute", "alerts")
    assert sms.hit(PHONE).allowed and not sms.hit(PHONE).allowed
    assert sms.hit("+15555550101").allowed
    assert other.hit(PHONE).allowed


def test_stepped_limits_all_apply(storage):
    limiter = RateLimiter(storage, "5 per minute; 2 per second", "sms")
    assert [limiter.hit(PHONE).allowed for _ in range(3)] == [True, True, False]


def test_a_new_window_starts_fresh(storage):
    limiter = RateLimiter(storage, "1 per second", "sms")
    assert limiter.hit(PHONE).allowed
    assert not limiter.hit(PHONE).allowed
    time.sleep(1.2)
    assert limiter.hit(PHONE).allowed


def test_counters_survive_a_new_limiter_on_the_same_store(storage):
    RateLimiter(storage, "2 per hour", "sms").hit(PHONE)
    RateLimiter(storage, "2 per hour", "sms").hit(PHONE)
    assert not RateLimiter(storage, "2 per hour", "sms").hit(PHONE).allowed


def test_the_sql_storage_expires_a_window_in_the_database(tmp_path):
    engine = db.make_engine(f"sqlite:///{tmp_path}/x.db")
    db.upgrade(engine)
    storage = SQLStorage(engine)
    assert storage.incr("k", 1) == 1
    assert storage.incr("k", 1) == 2
    assert storage.get("k") == 2 and storage.get_expiry("k") > time.time()
    time.sleep(1.1)
    assert storage.get("k") == 0
    assert storage.incr("k", 1) == 1
    assert storage.check()
    engine.dispose()


def test_it_lets_messages_through_when_the_counter_store_is_down(caplog):
    limiter = RateLimiter(make_storage(f"redis://127.0.0.1:{free_port()}/0", None), "1 per hour", "sms")
    with caplog.at_level(logging.ERROR):
        assert limiter.hit(PHONE).allowed and limiter.hit(PHONE).allowed
    assert "letting +1555***0100 through" in caplog.text
    assert PHONE not in caplog.text


# --- Redis that refuses or stops answering -------------------------------------------------


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def database(tmp_path):
    engine = db.make_engine(f"sqlite:///{tmp_path}/fallback.db")
    db.upgrade(engine)
    yield SQLStorage(engine)
    engine.dispose()


@pytest.fixture
def frozen_redis(tmp_path):
    """(URL, resume) of a real redis-server that accepts connections but is stopped (SIGSTOP)."""
    if shutil.which("redis-server") is None:
        unavailable("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    log = open(tmp_path / "redis.log", "wb")
    cmd = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while not port_open("127.0.0.1", port):
            assert proc.poll() is None and time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGSTOP)
        yield f"redis://127.0.0.1:{port}/0", lambda: os.kill(proc.pid, signal.SIGCONT)
    finally:
        os.kill(proc.pid, signal.SIGCONT)
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


@pytest.fixture(params=["refused", "frozen"])
def broken_redis(request):
    if request.param == "refused":
        return f"redis://127.0.0.1:{free_port()}/0"
    return request.getfixturevalue("frozen_redis")[0]


def test_a_broken_redis_hands_the_counting_to_the_database_so_the_limit_holds(broken_redis, database, caplog):
    limiter = RateLimiter(make_storage(broken_redis, None), "2 per hour", "sms", fallback=database)
    errors, fallbacks = (
        metric("operator_rate_limit_store_errors_total", store="primary"),
        metric("operator_rate_limit_fallback_total"),
    )
    with caplog.at_level(logging.ERROR):
        decisions = [limiter.hit(PHONE) for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, False, False]
    assert [d.notify for d in decisions[2:]] == [True, False]
    assert metric("operator_rate_limit_fallback_total") - fallbacks == 4
    # One failure paid for the outage, not one per message: Redis is retried later, not each time.
    assert metric("operator_rate_limit_store_errors_total", store="primary") - errors == 1
    assert caplog.text.count("counting in the database") == 1 and PHONE not in caplog.text


def test_redis_is_used_again_once_it_answers(frozen_redis, database):
    url, resume = frozen_redis
    limiter = RateLimiter(make_storage(url, None), "5 per hour", "sms", fallback=database, retry_after=0)
    assert limiter.hit(PHONE).allowed  # counted in the database
    resume()
    assert limiter.hit(PHONE).allowed
    key = limiter.items[0].key_for("sms", PHONE)
    assert limiter.storage.get(key) == 1 and database.get(key) == 1


def test_redis_gets_short_timeouts_unless_the_url_sets_its_own():
    kwargs = make_storage("redis://127.0.0.1:6379/0", None).storage.connection_pool.connection_kwargs
    assert kwargs["socket_timeout"] < 1 and kwargs["socket_connect_timeout"] < 1
    assert kwargs["retry"].get_retries() == 0
    own = make_storage("redis://127.0.0.1:6379/0?socket_timeout=2", None)
    assert own.storage.connection_pool.connection_kwargs["socket_timeout"] == 2


def test_sms_still_gets_its_limit_notice_when_redis_is_refused(settings):
    changed = with_settings(settings, rate_limit="2 per hour", redis_url=f"redis://127.0.0.1:{free_port()}/0")
    with app_with(changed) as app:
        phone = Phone(app.test_client())
        replies = [phone.text("help") for _ in range(4)]
    assert [r.startswith("Commands:") for r in replies[:2]] == [True, True]
    assert replies[2].startswith("Query limit reached") and replies[3] is None


def test_when_redis_and_the_database_both_fail_messages_go_through_counted(tmp_path):
    engine = db.make_engine(f"sqlite:///{tmp_path}/nothing.db")  # no schema: every count fails
    limiter = RateLimiter(
        make_storage(f"redis://127.0.0.1:{free_port()}/0", None),
        "1 per hour",
        "sms",
        fallback=SQLStorage(engine),
    )
    before = metric("operator_rate_limit_uncounted_total")
    assert limiter.hit(PHONE).allowed and limiter.hit(PHONE).allowed
    assert metric("operator_rate_limit_uncounted_total") - before == 2
    engine.dispose()
