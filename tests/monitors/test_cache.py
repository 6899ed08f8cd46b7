from __future__ import annotations

import time
from dataclasses import replace

import pytest

from app import create_app
from monitors import cached_check
from monitors.base_monitor import Result
from monitors.cache import MonitorCache
from tests.support.apps import with_settings
from tests.support.fakes.custom_api import TOKEN, FakeCustomApi
from tests.support.phones import Phone
from tests.support.servers import redis_or_skip


@pytest.fixture
def fake():
    with FakeCustomApi() as server:
        yield server


def _apps(settings, fake, count=2, ttl=15.0):
    """Separate app instances over one store: what several gunicorn workers are."""
    changed = with_settings(settings, custom_api_url=fake.url, custom_api_token=TOKEN, cache_ttl=ttl)
    return [create_app(changed) for _ in range(count)]


def _close(apps):
    for app in apps:
        app.extensions["operator"].close()


def _api_hits(fake):
    return sum(1 for r in fake.requests if r.path == "/")


def test_a_burst_of_status_from_two_workers_asks_the_backend_once(settings, fake):
    apps = _apps(settings, fake)
    try:
        first, second = (Phone(app.test_client()) for app in apps)
        assert "api ok" in first.text("status")
        assert "api ok" in second.text("status")
        assert "api ok" in first.text("status")
        assert _api_hits(fake) == 1
    finally:
        _close(apps)


def test_redis_holds_the_cache_when_configured(settings, fake):
    redis_url = redis_or_skip()
    apps = _apps(with_settings(settings, redis_url=redis_url), fake)
    try:
        first, second = (Phone(app.test_client()) for app in apps)
        first.text("status")
        second.text("status")
        assert _api_hits(fake) == 1
    finally:
        _close(apps)


def test_cached_data_older_than_a_few_seconds_says_its_age(settings, fake):
    (app,) = _apps(settings, fake, 1)
    try:
        monitor = app.extensions["operator"].monitors["api"]
        fresh = cached_check(monitor)
        monitor.cache.put(
            "\x1f".join(("CustomApiMonitor", fake.url, "check")), replace(fresh, fetched_at=time.time() - 12)
        )
        reply = Phone(app.test_client()).text("status")
        assert "api ok" in reply and "(12s old)" in reply
    finally:
        _close([app])


def test_failures_are_not_cached(settings, fake):
    fake.routes["/"] = (500, {"message": "boom"})
    (app,) = _apps(settings, fake, 1)
    try:
        phone = Phone(app.test_client())
        assert "api ERROR HTTP 500: boom" in phone.text("status")
        fake.routes["/"] = (200, {})
        assert "api ok" in phone.text("status")
    finally:
        _close([app])


def test_a_zero_ttl_turns_the_cache_off(settings, fake):
    apps = _apps(settings, fake, 1, ttl=0.0)
    try:
        phone = Phone(apps[0].test_client())
        phone.text("status")
        phone.text("status")
        assert _api_hits(fake) == 2
    finally:
        _close(apps)


def test_entries_expire_after_the_ttl(tmp_path):
    cache = MonitorCache(0.2, database_url=f"sqlite:///{tmp_path}/c.db")
    cache.put("k", Result("api", True, text="ok"))
    assert cache.get("k").text == "ok"
    time.sleep(0.3)
    assert cache.get("k") is None
    cache.close()


def test_a_broken_cache_never_breaks_the_answer():
    cache = MonitorCache(15, redis_url="redis://127.0.0.1:1/0")
    result = cache.fetch("k", lambda: Result("api", True, text="ok 5ms"))
    assert result.text == "ok 5ms"
