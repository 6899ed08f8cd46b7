"""The dead man's switch end to end: a real worker process pages through the Twilio fake.

Pings arrive over a real socket, from a job (/heartbeat/<name>) or as Alertmanager's Watchdog from
real Prometheus and Alertmanager binaries. Twelve minutes of silence are made by moving the last
ping back in the store, as if that time had passed; everything else runs at its own pace.
"""

from __future__ import annotations

import re
from contextlib import ExitStack

import pytest
import requests

from app import create_app
from heartbeats import pings
from incidents import records
from tests.support.alertmanager_server import Switch, alertmanager, prometheus, serving, wait_for
from tests.support.apps import from_file, with_settings
from tests.support.fakes.twilio_api import FakeTwilio
from tests.support.heartbeats import HEARTBEAT_TOKEN, pinged
from tests.support.phones import ADMIN, RESPONDER, VIEWER
from tests.support.servers import free_port
from tests.support.workers import start_worker, stop_worker, worker_env

pytestmark = pytest.mark.slow
AM_TOKEN = "am-token-heartbeat-e2e"
CONFIG = """
heartbeats:
  - name: backup
    timeout: 10m
  - name: pipeline
    timeout: 10m
    watchdog: Watchdog
"""
# kube-prometheus's Watchdog; `for` lets Prometheus find its Alertmanager before the first send.
WATCHDOG_RULES = """
groups:
  - name: meta
    rules:
      - alert: Watchdog
        expr: vector(1)
        for: 2s
        labels: {severity: none}
        annotations: {summary: "Always firing: the alerting pipeline works."}
"""
# The route docs/paging.md gives for it, with seconds where the docs have minutes.
WATCHDOG_ROUTE = """
  routes:
    - matchers: ['alertname = "Watchdog"']
      receiver: operator
      group_wait: 0s
      group_interval: 1s
      repeat_interval: 2s
"""


@pytest.fixture
def fake(settings):
    fake = FakeTwilio(settings.twilio_account_sid, settings.twilio_auth_token).start()
    yield fake
    fake.stop()


@pytest.fixture
def app(settings, tmp_path):
    (tmp_path / "operator.yml").write_text(CONFIG)
    changed = with_settings(
        settings,
        alertmanager_token=AM_TOKEN,
        heartbeat_token=HEARTBEAT_TOKEN,
        recovery_delay=1.0,
        **from_file(tmp_path / "operator.yml"),
    )
    app = create_app(changed)
    yield app
    app.extensions["operator"].close()


def received(fake: FakeTwilio, body: str) -> list[str]:
    """The numbers that got exactly `body`."""
    with fake.lock:
        return sorted(m.to for m in fake.messages if m.body == body)


def worker(stack: ExitStack, tmp_path, settings, fake) -> None:
    """A worker process on the app's store and config file, stopped (cleanly) with the stack."""
    env = worker_env(tmp_path, fake, settings.database_url, OPERATOR_CONFIG=str(tmp_path / "operator.yml"))
    proc = start_worker(tmp_path, env)
    stack.callback(lambda: stop_worker(proc) == 0 or pytest.fail("the worker did not stop cleanly"))


def test_a_job_that_stops_pinging_pages_and_its_next_ping_resolves_it(tmp_path, settings, app, fake):
    services = app.extensions["operator"]
    paged = [ADMIN, RESPONDER]
    with ExitStack() as stack:
        url = stack.enter_context(serving(app))
        worker(stack, tmp_path, settings, fake)
        assert requests.get(f"{url}/heartbeat/backup", params={"token": HEARTBEAT_TOKEN}, timeout=10).ok
        pinged(services, "backup", 12 * 60)  # twelve quiet minutes
        missing = "HEARTBEAT MISSING backup, last seen 12m ago #1"
        wait_for(lambda: received(fake, missing) == paged, "the page for the silent heartbeat")
        assert VIEWER not in {m.to for m in fake.messages}

        headers = {"Authorization": f"Bearer {HEARTBEAT_TOKEN}"}
        answer = requests.post(f"{url}/heartbeat/backup", headers=headers, timeout=10).json()
        assert answer == {"status": "ok", "heartbeat": "backup", "was_missing": True}
        back = "RESOLVED after 2m heartbeat backup #1"
        wait_for(lambda: received(fake, back) == paged, "the recovery notice")
    assert len(fake.messages) == 4


def test_alertmanagers_watchdog_is_a_heartbeat_that_never_pages_until_it_stops(tmp_path, settings, app, fake):
    services = app.extensions["operator"]
    am_port = free_port()
    with ExitStack() as stack:
        switch = Switch(("web-1",))
        stack.callback(switch.close)
        hook = stack.enter_context(serving(app)) + "/webhook/alertmanager"
        am_url = f"http://127.0.0.1:{am_port}"
        stack.enter_context(
            prometheus(tmp_path, switch.port, [am_url], WATCHDOG_RULES, "--rules.alert.resend-delay=1s")
        )
        worker(stack, tmp_path, settings, fake)

        def deliveries() -> float:
            metrics = requests.get(f"{am_url}/metrics", timeout=5).text
            found = re.search(
                r'^alertmanager_notifications_total\{integration="webhook"\} (\S+)', metrics, re.M
            )
            return float(found.group(1)) if found else 0.0

        with alertmanager(tmp_path, "am", hook, AM_TOKEN, port=am_port, routes=WATCHDOG_ROUTE):
            wait_for(lambda: deliveries() >= 3, "Alertmanager to deliver the Watchdog a few times")
            with services.engine.connect() as conn:
                assert pings.state(conn, "pipeline") is not None, "the Watchdog pinged its heartbeat"
                assert records.recent(conn, 5) == [], "and was never an alert"
        assert fake.messages == []

        pinged(services, "pipeline", 12 * 60)  # Alertmanager is gone: twelve quiet minutes
        missing = "HEARTBEAT MISSING pipeline, last seen 12m ago #1"
        wait_for(lambda: received(fake, missing) == [ADMIN, RESPONDER], "the page for the silent Watchdog")

        with alertmanager(tmp_path, "am", hook, AM_TOKEN, port=am_port, routes=WATCHDOG_ROUTE):
            back = "RESOLVED after 2m heartbeat pipeline #1"
            wait_for(
                lambda: received(fake, back) == [ADMIN, RESPONDER], "the Watchdog's return to resolve it"
            )
    assert len(fake.messages) == 4
