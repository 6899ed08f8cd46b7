"""Paging end to end through a real `flask --app app worker` process and the Twilio fake.

Real Prometheus and Alertmanager binaries fire an alert into Operator's webhook on a real socket;
an Operator rule watches the same Prometheus series. The worker (a subprocess, as in production)
sends the texts to the local Twilio Messages API fake; acks come in as signed SMS.
"""

from __future__ import annotations

import json
import time
from contextlib import ExitStack

import pytest

from app import create_app
from tests.support.alertmanager_server import Switch, alertmanager, prometheus, serving, wait_for
from tests.support.apps import with_settings
from tests.support.fakes.twilio_api import FakeTwilio
from tests.support.paths import PAYLOADS
from tests.support.phones import ADMIN, RESPONDER, VIEWER, Phone
from tests.support.workers import app_worker_env, received, start_worker, stop_worker

pytestmark = pytest.mark.slow
AM_TOKEN = "e2e-paging-token-7c1d"
BOSS = "+15555550170"
RULES = """
rules:
  - name: switch_on
    monitor: prometheus
    query: max(test_switch)
    op: ">"
    threshold: 0
    repeat: 3s
    message: "switch {value} for {duration}"
"""


@pytest.fixture
def fake(settings):
    fake = FakeTwilio(settings.twilio_account_sid, settings.twilio_auth_token).start()
    yield fake
    fake.stop()


@pytest.fixture
def app(settings):
    app = create_app(
        with_settings(settings, alertmanager_token=AM_TOKEN, rate_limit="1000 per minute", recovery_delay=1.0)
    )
    yield app
    app.extensions["operator"].close()


def test_alertmanager_and_rule_pages_reach_twilio_through_the_worker_and_acks_and_recoveries_follow(
    tmp_path, settings, app, fake
):
    (tmp_path / "operator.yml").write_text(RULES)
    with ExitStack() as stack:
        switch = Switch(("web-1", "web-2", "web-3"))
        stack.callback(switch.close)
        hook = stack.enter_context(serving(app)) + "/webhook/alertmanager"
        am = stack.enter_context(alertmanager(tmp_path, "am", hook, AM_TOKEN))
        prom = stack.enter_context(prometheus(tmp_path, switch.port, [am]))
        worker = start_worker(tmp_path, app_worker_env(tmp_path, settings, fake, PROMETHEUS_URL=prom))
        stack.callback(stop_worker, worker)
        phone = Phone(app.test_client(), RESPONDER)

        firing = r"FIRING 3 HighCPU web-1,web-2,web-3 #(\d+): CPU above 90%"
        pages = wait_for(
            lambda: len(received(fake, firing)) >= 2 and received(fake, firing), "the FIRING texts"
        )
        group = pages[0].group(1)
        assert {m.group(1) for m in pages} == {group}
        assert len(received(fake, firing, ADMIN)) == len(received(fake, firing, RESPONDER)) == 1
        assert received(fake, firing, VIEWER) == [], "viewers are never paged"
        rule_page = wait_for(
            lambda: received(fake, r"ALERT #(\d+): switch 1 for 0s", ADMIN), "the rule's page"
        )
        rule = rule_page[0].group(1)
        reminder = rf"STILL FIRING \d+s: #{rule} switch 1 for \d+s"
        wait_for(lambda: received(fake, reminder, RESPONDER), "a reminder for the rule at its repeat")

        assert phone.text(f"ack {group}").startswith(f"Acked #{group} HighCPU (firing ")
        assert phone.text(f"ack {rule}").startswith(f"Acked #{rule} switch_on (firing ")
        time.sleep(1)  # a reminder already in Twilio's hands when the ack landed arrives now
        reminders = len(received(fake, reminder))
        time.sleep(5)
        assert len(received(fake, reminder)) == reminders, "an ack stops the rule's reminders"

        switch.value = 0
        recovered = rf"RESOLVED after \d+[sm]\w* HighCPU #{group}"
        wait_for(lambda: len(received(fake, recovered)) >= 2, "the RESOLVED texts for the group")
        assert len(received(fake, recovered, ADMIN)) == len(received(fake, recovered, RESPONDER)) == 1
        rule_recovered = rf"RESOLVED after \d+[sm]\w*: #{rule} switch_on now 0"
        wait_for(lambda: len(received(fake, rule_recovered)) >= 2, "the RESOLVED texts for the rule")
        assert all(m.status_callback == "" for m in fake.messages), "no PUBLIC_URL, no callback"
        assert stop_worker(worker) == 0


def group_payload(name: str) -> dict:
    """The captured firing notification, renamed into a group of its own."""
    body = json.loads((PAYLOADS / "alertmanager_firing.json").read_text())
    body["groupKey"] = f'{{}}:{{alertname="{name}"}}'
    body["commonLabels"]["alertname"] = name
    for alert in body["alerts"]:
        alert["labels"]["alertname"] = name
        alert["fingerprint"] = name + alert["fingerprint"]
    return body


def test_an_unacked_alert_escalates_through_the_worker_and_an_acked_one_does_not(
    tmp_path, settings, app, fake
):
    client = app.test_client()
    ids = {}
    for name in ("Acked", "Ignored"):
        response = client.post(
            "/webhook/alertmanager", json=group_payload(name), headers={"Authorization": f"Bearer {AM_TOKEN}"}
        )
        assert response.status_code == 200
        ids[name] = response.json["alerts"][0]
    assert Phone(client, ADMIN).text(f"ack {ids['Acked']}").startswith(f"Acked #{ids['Acked']} ")
    env = app_worker_env(tmp_path, settings, fake, ESCALATE_AFTER="3s", ESCALATION_NUMBERS=BOSS)
    worker = start_worker(tmp_path, env)
    try:
        escalated = rf"ESCALATED \d+s unacked: FIRING 3 Ignored web-1,web-2,web-3 #{ids['Ignored']}"
        wait_for(lambda: received(fake, escalated, BOSS), "the escalation of the unacked alert")
        time.sleep(2)
    finally:
        assert stop_worker(worker) == 0
    assert [m.string for m in received(fake, ".*", BOSS)] == [received(fake, escalated, BOSS)[0].string]
    pages = received(fake, r"FIRING 3 (\w+) .*")
    assert sorted(m.group(1) for m in pages) == ["Acked", "Acked", "Ignored", "Ignored"]
