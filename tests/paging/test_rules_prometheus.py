"""Rules against a real Prometheus, with the clock in the test's hands: empty results and breaches."""

from __future__ import annotations

from contextlib import ExitStack

import pytest
import requests

import alerting
from incidents.rules import parse_rules
from outbox import queue
from tests.support.alertmanager_server import Switch, prometheus, wait_for
from tests.support.apps import app_with, with_settings
from tests.support.phones import ADMIN

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
