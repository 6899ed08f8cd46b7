"""rate_limiter.py: the same limits arithmetic over our SQL storage (SQLite, PostgreSQL) and Redis."""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from core import db
from rate_limiter import RateLimiter, SQLStorage, make_storage
from tests.support.servers import free_port, fresh_postgres_database, redis_or_skip

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
