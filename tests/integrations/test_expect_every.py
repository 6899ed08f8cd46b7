"""`expect_every`: an integration silent for longer pages "INTEGRATION SILENT <name>" like a heartbeat."""

from __future__ import annotations

import json

import pytest

from config import Heartbeat, Settings
from core import db
from heartbeats import watch
from tests.support.integrations import PD_KEY, alerts, entry, with_integrations
from tests.support.oncall import texts


@pytest.fixture
def settings(settings):
    return with_integrations(settings, entry("pd", expect_every="10m"))


def trigger(client) -> int:
    event = {
        "routing_key": PD_KEY,
        "event_action": "trigger",
        "payload": {"summary": "Disk full", "source": "db-1", "severity": "error"},
    }
    return client.post("/v2/enqueue", data=json.dumps(event), content_type="application/json").status_code


def test_expect_every_becomes_a_heartbeat_named_after_the_integration(tmp_path):
    (tmp_path / "operator.yml").write_text(
        "integrations:\n  - {name: pd, kind: pagerduty, key_env: PD_KEY, expect_every: 10m}\n"
    )
    env = {"TWILIO_AUTH_TOKEN": "t" * 32, "OPERATOR_CONFIG": str(tmp_path / "operator.yml"), "PD_KEY": PD_KEY}
    (heartbeat,) = Settings.from_env(env).heartbeats
    assert heartbeat == Heartbeat(name="integration:pd", timeout=600.0, integration="pd")


def test_silence_counted_from_start_up_pages_integration_silent(services):
    start = db.now()
    assert watch.run(services, now=start) == 0  # the first check after start-up arms it
    assert watch.run(services, now=start + 590) == 0
    assert watch.run(services, now=start + 700) == 2  # the two pager numbers
    (alert,) = alerts(services)
    assert alert.name == "integration pd" and alert.source == "heartbeat"
    assert texts(services, "alert")[0][1].startswith("INTEGRATION SILENT pd, last seen 11m ago #1")


def test_an_event_after_the_silence_closes_it_with_a_recovery(client, services):
    start = db.now()
    watch.run(services, now=start - 700)
    watch.run(services, now=start)
    assert alerts(services)[0].status == "firing"
    assert trigger(client) == 202
    silence = next(a for a in alerts(services) if a.name == "integration pd")
    assert silence.status == "resolved"
    assert len(texts(services, "recovery")) == 2


def test_an_integration_that_keeps_sending_is_never_paged(client, services):
    start = db.now()
    watch.run(services, now=start - 590)
    assert trigger(client) == 202
    assert watch.run(services, now=start + 300) == 0
    assert not any(a.name == "integration pd" for a in alerts(services))


def test_a_refused_event_does_not_count(client, services):
    start = db.now()
    watch.run(services, now=start - 700)
    bad = {"routing_key": PD_KEY, "event_action": "trigger"}
    assert (
        client.post("/v2/enqueue", data=json.dumps(bad), content_type="application/json").status_code == 400
    )
    assert watch.run(services, now=start) == 2
