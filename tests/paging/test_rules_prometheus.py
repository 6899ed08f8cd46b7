"""Rules against a real Prometheus: empty results are quiet, and the breach after them pages at once.

In process with the clock in the test's hands (counting evaluation intervals), and through a real
worker process and the Twilio fake.
"""

from __future__ import annotations

from contextlib import ExitStack

import pytest
import requests
from sqlalchemy import select

import alerting
from core import db
from incidents.rules import parse_rules
from outbox import queue
from tests.support.alertmanager_server import Switch, prometheus, wait_for
from tests.support.apps import app_with, with_settings
from tests.support.fakes.twilio_api import FakeTwilio
from tests.support.live_server import base_env
from tests.support.phones import ADMIN, TOKEN
from tests.support.workers import start_worker, stop_worker

pytestmark = pytest.mark.slow
T0 = 1_900_000_000.0
# Empty while every host is healthy, like the guide's error-rate query with no 5xx series.
BREACHES = "max(test_switch > 0)"


def texts(services) -> list[str]:
    o = queue.outbox.c
    with services.engine.connect() as conn:
        rows = conn.execute(queue.outbox.select().where(o.to_number == ADMIN).order_by(o.id)).all()
    return [r.body for r in rows]


def pages(services) -> list[str]:
    return [body for body in texts(services) if body.startswith("ALERT")]


def answer(url: str, query: str) -> list:
    return requests.get(f"{url}/api/v1/query", params={"query": query}, timeout=5).json()["data"]["result"]


def test_a_breach_after_a_spell_of_empty_results_pages_within_two_intervals(tmp_path, settings):
    with ExitStack() as stack:
        switch = Switch(("web-1", "web-2"))
        stack.callback(switch.close)
        switch.value = 0
        url = stack.enter_context(prometheus(tmp_path, switch.port, []))
        wait_for(lambda: answer(url, "max(test_switch)"), "a first scrape")
        app = stack.enter_context(app_with(with_settings(settings, prometheus_url=url, alert_interval=1.0)))
        services = app.extensions["operator"]
        section = [{"name": "errors", "monitor": "prometheus", "query": BREACHES, "op": ">", "threshold": 0,
                    "recipients": [ADMIN], "message": "errors {value}"}]  # fmt: skip
        evaluator = alerting.Evaluator(services, parse_rules(section, services.settings, services.monitors))
        interval = services.settings.alert_interval
        now = T0
        for _ in range(45):
            evaluator.tick(now)
            now += interval
        assert texts(services) == [], "an empty result is neither a breach nor an error"
        switch.value = 1
        wait_for(lambda: answer(url, BREACHES), "Prometheus to see the breach")
        late = 0
        while not pages(services) and late < 40:
            late += 1
            evaluator.tick(now)
            now += interval
        assert texts(services) == ["ALERT #1: errors 1"]
        assert late <= 2, f"paged {late} evaluation intervals after the breach"


GUIDE_ERROR_RATE = 'sum(rate(http_requests_total{code=~"5.."}[5m])) / sum(rate(http_requests_total[5m]))'


def test_the_worker_keeps_quiet_on_empty_results_and_pages_the_breach(tmp_path, settings):
    (tmp_path / "operator.yml").write_text(f"""
rules:
  - name: error_rate
    monitor: prometheus
    query: '{GUIDE_ERROR_RATE}'
    threshold: 0.05
    recipients: ["{ADMIN}"]
  - name: switch
    monitor: prometheus
    query: '{BREACHES}'
    threshold: 0
    recipients: ["{ADMIN}"]
    message: "switch {{value}}"
""")
    url = f"sqlite:///{tmp_path}/operator.db"
    with ExitStack() as stack:
        switch = Switch(("web-1",))
        stack.callback(switch.close)
        switch.value = 0
        prom = stack.enter_context(prometheus(tmp_path, switch.port, []))
        wait_for(lambda: answer(prom, "max(test_switch)"), "a first scrape")
        fake = FakeTwilio(settings.twilio_account_sid, TOKEN).start()
        stack.callback(fake.stop)
        env = base_env(tmp_path, TWILIO_AUTH_TOKEN=TOKEN, TWILIO_ACCOUNT_SID=settings.twilio_account_sid,
                       TWILIO_FROM_NUMBER=settings.twilio_from_number, SMS_BACKEND="twilio",
                       TWILIO_API_URL=fake.url, AUTHORIZED_NUMBERS=f"{ADMIN}:admin", ALERT_INTERVAL="1",
                       PROMETHEUS_URL=prom, OPERATOR_CONFIG=str(tmp_path / "operator.yml"))  # fmt: skip
        worker = start_worker(tmp_path, env)
        stack.callback(stop_worker, worker)
        engine = db.make_engine(url)
        stack.callback(engine.dispose)

        def rows():
            try:
                with engine.connect() as conn:
                    return {r.rule: r for r in conn.execute(select(alerting.rule_states))}
            except Exception:  # noqa: BLE001 - the worker has not made the tables yet
                return {}

        first = wait_for(lambda: rows().get("switch"), "a first evaluation").evaluated_at
        wait_for(lambda: rows()["switch"].evaluated_at >= first + 8, "eight more seconds of empty results")
        states = rows()
        for rule in ("error_rate", "switch"):
            assert (
                states[rule].state == "ok" and states[rule].failures == 0 and states[rule].error_since is None
            )
            assert states[rule].next_eval_at <= states[rule].evaluated_at + 1.0, "never backed off"
        assert fake.bodies() == [], "an empty result texts nobody"
        switch.value = 1
        wait_for(fake.bodies, "the page")
        assert fake.bodies() == ["ALERT #1: switch 1"]
        assert stop_worker(worker) == 0
