"""End to end with real binaries: Prometheus rule -> Alertmanager -> Operator -> outbox, and back.

Also covers incidents/alertmanager.py (the API v2 client) against the real Alertmanager.
"""

from __future__ import annotations

import re
import time
from contextlib import ExitStack
from dataclasses import dataclass

import pytest
import requests
from sqlalchemy import select

from app import create_app
from incidents import records
from incidents.silences import Alertmanager, AlertmanagerError
from outbox.queue import outbox
from tests.support.alertmanager_server import Switch, alertmanager, prometheus, serving, wait_for
from tests.support.apps import with_settings
from tests.support.phones import ADMIN, RESPONDER, Phone
from tests.support.servers import free_port

pytestmark = pytest.mark.slow
TOKEN = "e2e-webhook-token-55aa"


@dataclass
class Stack:
    app: object
    services: object
    switch: Switch
    alertmanagers: list[str]

    def texts(self, kind: str) -> list:
        with self.services.engine.connect() as conn:
            return conn.execute(select(outbox).where(outbox.c.kind == kind).order_by(outbox.c.id)).all()

    def alert(self, alert_id: int) -> records.Alert:
        with self.services.engine.connect() as conn:
            return records.get(conn, alert_id)


@pytest.fixture
def stack(settings, tmp_path):
    """Operator on a real socket, an HA pair of Alertmanagers (not clustered), Prometheus."""
    with ExitStack() as stack:
        switch = Switch(("web-1", "web-2", "web-3"))
        stack.callback(switch.close)
        am_port = free_port()
        app = create_app(
            with_settings(
                settings,
                alertmanager_token=TOKEN,
                alertmanager_url=f"http://127.0.0.1:{am_port}",
                rate_limit="1000 per minute",
            )
        )
        stack.callback(app.extensions["operator"].close)
        base = stack.enter_context(serving(app))
        hook = f"{base}/webhook/alertmanager"
        first = stack.enter_context(alertmanager(tmp_path, "am1", hook, TOKEN, port=am_port))
        second = stack.enter_context(alertmanager(tmp_path, "am2", hook, TOKEN))
        stack.enter_context(prometheus(tmp_path, switch.port, [first, second]))
        yield Stack(app, app.extensions["operator"], switch, [first, second])


def webhook_sends(url: str) -> float:
    """How many notifications this Alertmanager delivered to a webhook (its own metric)."""
    for line in requests.get(f"{url}/metrics", timeout=5).text.splitlines():
        if line.startswith('alertmanager_notifications_total{integration="webhook"}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_a_firing_rule_pages_once_through_an_ha_pair_and_its_resolution_flows_back(stack):
    pages = wait_for(lambda: len(stack.texts("alert")) >= 2 and stack.texts("alert"), "the FIRING texts")
    assert sorted(t.to_number for t in pages) == sorted([ADMIN, RESPONDER])
    assert pages[0].body == "FIRING 3 HighCPU web-1,web-2,web-3 #1: CPU above 90%"
    # Both Alertmanagers delivered the group, and re-sent nothing new: still one text each.
    wait_for(lambda: all(webhook_sends(u) >= 1 for u in stack.alertmanagers), "both Alertmanagers to deliver")
    time.sleep(3)
    assert len(stack.texts("alert")) == 2
    alert = stack.alert(1)
    assert (alert.source, alert.status, alert.size) == ("alertmanager", "firing", 3)

    stack.switch.value = 0
    notices = wait_for(lambda: len(stack.texts("recovery")) >= 2 and stack.texts("recovery"), "RESOLVED")
    assert sorted(t.to_number for t in notices) == sorted([ADMIN, RESPONDER])
    assert notices[0].body.startswith("RESOLVED after ") and notices[0].body.endswith(" HighCPU #1")
    assert stack.alert(1).status == "resolved"
    time.sleep(3)
    assert len(stack.texts("recovery")) == 2  # the HA peer's resolved copy was a duplicate


def test_silence_by_sms_suppresses_the_alert_and_unsilence_expires_it(stack):
    wait_for(lambda: stack.texts("alert"), "the FIRING text")
    phone = Phone(stack.app.test_client(), RESPONDER)
    reply = phone.text("silence 1 2h")
    assert re.fullmatch(
        r"Silenced #1 HighCPU in Alertmanager for 2h, until .*\d\d:\d\d UTC\. 'unsilence 1' ends it\.", reply
    ), reply
    silence_id = stack.alert(1).silence_id
    assert 7100 < stack.alert(1).silenced_until - time.time() <= 7200, "reminders resume when it ends"
    client = Alertmanager(stack.alertmanagers[0])
    silence = client.silence(silence_id)
    assert silence["status"]["state"] == "active"
    assert silence["createdBy"] == "+1555***0101"
    assert {(m["name"], m["value"]) for m in silence["matchers"]} >= {
        ("alertname", "HighCPU"),
        ("severity", "page"),
    }
    assert 7100 < _seconds(silence["endsAt"]) - _seconds(silence["startsAt"]) < 7300

    def suppressed() -> bool:
        alerts = client.alerts({"alertname": "HighCPU"})
        return len(alerts) == 3 and all(
            a["status"]["state"] == "suppressed" and silence_id in a["status"]["silencedBy"] for a in alerts
        )

    wait_for(suppressed, "Alertmanager to suppress all three alerts")

    assert phone.text("unsilence 1") == "Silence on #1 HighCPU expired."
    assert client.silence(silence_id)["status"]["state"] == "expired"
    assert stack.alert(1).silence_id is None
    wait_for(
        lambda: all(a["status"]["state"] == "active" for a in client.alerts({"alertname": "HighCPU"})),
        "the alerts to be active again",
    )


def test_the_client_reports_alertmanager_errors_in_words(stack):
    client = Alertmanager(stack.alertmanagers[0])
    with pytest.raises(AlertmanagerError, match="no labels"):
        client.create_silence({}, time.time(), time.time() + 60, "+1555***0101", "x")
    with pytest.raises(AlertmanagerError, match="HTTP 400"):
        client.create_silence({"alertname": "X"}, time.time() + 60, time.time(), "+1555***0101", "ends first")
    assert client.expire_silence("00000000-0000-0000-0000-000000000000") is False
    silence_id = client.create_silence({"alertname": "X"}, time.time(), time.time() + 60, "+1555***0101", "t")
    assert client.expire_silence(silence_id) is True
    assert client.silence(silence_id)["status"]["state"] == "expired"


def _seconds(stamp: str) -> float:
    from incidents.sources import parse_time

    return parse_time(stamp)
