"""A maintenance window end to end: real Prometheus and Alertmanager fire into Operator, the real
worker process sends to the Twilio fake. The window holds the page; its end lets the page through.

The window is set by a signed SMS; its end is brought forward by the test (time it controls)
rather than waited for.
"""

from __future__ import annotations

import json
import re
from contextlib import ExitStack

import pytest

from app import create_app
from core import db
from incidents import maintenance, records
from tests.support.alertmanager_server import Switch, alertmanager, prometheus, serving, wait_for
from tests.support.apps import with_settings
from tests.support.fakes.twilio_api import FakeTwilio
from tests.support.paths import PAYLOADS
from tests.support.phones import ADMIN, RESPONDER, VIEWER, Phone
from tests.support.workers import app_worker_env, received, start_worker, stop_worker

pytestmark = pytest.mark.slow
AM_TOKEN = "e2e-maintenance-token-41f0"


@pytest.fixture
def fake(settings):
    fake = FakeTwilio(settings.twilio_account_sid, settings.twilio_auth_token).start()
    yield fake
    fake.stop()


@pytest.fixture
def app(settings):
    app = create_app(with_settings(settings, alertmanager_token=AM_TOKEN, rate_limit="1000 per minute"))
    yield app
    app.extensions["operator"].close()


def firing(services, name: str) -> list[records.Alert]:
    with services.engine.connect() as conn:
        return [a for a in records.firing(conn) if a.name == name]


def disk_full(client) -> int:
    """A second group, outside the window, straight to the webhook."""
    body = json.loads((PAYLOADS / "alertmanager_firing.json").read_text())
    body["groupKey"] = '{}:{alertname="DiskFull"}'
    body["commonLabels"]["alertname"] = "DiskFull"
    for alert in body["alerts"]:
        alert["labels"]["alertname"] = "DiskFull"
        alert["fingerprint"] = "DiskFull" + alert["fingerprint"]
    response = client.post(
        "/webhook/alertmanager", json=body, headers={"Authorization": f"Bearer {AM_TOKEN}"}
    )
    assert response.status_code == 200, response.json
    return response.json["alerts"][0]


def test_a_window_holds_a_real_alertmanager_page_and_its_end_lets_the_page_through(
    tmp_path, settings, app, fake
):
    services = app.extensions["operator"]
    client = app.test_client()
    reply = Phone(client, RESPONDER).text("maintenance 2h HighCPU")
    window = int(re.match(r"Maintenance #(\d+) for 2h, until [^:]+:\d\d [A-Z]+: HighCPU ", reply).group(1))
    with ExitStack() as stack:
        switch = Switch(("web-1", "web-2", "web-3"))
        stack.callback(switch.close)
        hook = stack.enter_context(serving(app)) + "/webhook/alertmanager"
        am = stack.enter_context(alertmanager(tmp_path, "am", hook, AM_TOKEN))
        worker = start_worker(tmp_path, app_worker_env(tmp_path, settings, fake))
        stack.callback(stop_worker, worker)
        stack.enter_context(prometheus(tmp_path, switch.port, [am]))

        [held] = wait_for(lambda: firing(services, "HighCPU"), "HighCPU from Alertmanager, stored")
        assert re.search(
            rf"#{held.id} HighCPU web-1,web-2 \+1 \S+ \(maintenance\)", Phone(client).text("alerts")
        )
        # A page queued after the held one reaches the phones: had HighCPU been queued, it went first.
        other = disk_full(client)
        wait_for(lambda: len(received(fake, rf"FIRING 3 DiskFull .* #{other}.*")) == 2, "the DiskFull pages")
        assert received(fake, r".*HighCPU.*") == [], "the window holds the HighCPU page"

        with services.engine.begin() as conn:  # the window's two hours are up
            maintenance.set_end(conn, window, db.now() - 1)
        page = rf"FIRING 3 HighCPU web-1,web-2,web-3 #{held.id}: CPU above 90%"
        wait_for(lambda: len(received(fake, page)) == 2, "the held page, once the window is over")
        assert {m.string for m in received(fake, page, ADMIN)} == {
            m.string for m in received(fake, page, RESPONDER)
        }
        assert received(fake, ".*", VIEWER) == []
        assert Phone(client).text("maintenance").startswith("No maintenance windows.")
        assert stop_worker(worker) == 0
    assert len(received(fake, r".*HighCPU.*")) == 2, "released once"
