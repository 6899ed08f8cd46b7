"""POST /integrations/<name> for Grafana Alerting's webhook contact point, with its captured payloads."""

from __future__ import annotations

import json

import pytest

from tests.support.integrations import GF_KEY, alerts, basic, entry, stored, with_integrations
from tests.support.oncall import texts
from tests.support.paths import PAYLOADS

FIRING = (PAYLOADS / "grafana_firing.json").read_bytes()
RESOLVED = (PAYLOADS / "grafana_resolved.json").read_bytes()


@pytest.fixture
def settings(settings):
    return with_integrations(settings, entry("gf"))


def post(client, body, headers=None):
    headers = {"Authorization": f"Bearer {GF_KEY}"} if headers is None else headers
    return client.post("/integrations/gf", data=body, content_type="application/json", headers=headers)


@pytest.mark.parametrize(
    "headers",
    [{"Authorization": f"Bearer {GF_KEY}"}, basic(GF_KEY, user="grafana")],
    ids=["bearer", "basic"],
)
def test_a_grafana_contact_point_pages_with_its_bearer_or_basic_credentials(client, services, headers):
    answer = post(client, FIRING, headers)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.get_json()["received"] == 2
    (alert,) = alerts(services)
    assert alert.source == "grafana" and alert.status == "firing"
    assert texts(services, "alert")


def test_a_wrong_grafana_credential_is_401_and_stores_nothing(client, services):
    assert post(client, FIRING, basic("wrong", user="grafana")).status_code == 401
    assert stored(services) == (0, 0, 0)


def test_the_dashboard_and_panel_links_stay_on_the_alert(client, services):
    post(client, FIRING)
    (alert,) = alerts(services)
    assert alert.labels["grafana_dashboard"] == "https://play.grafana.org/d/000000012"
    assert alert.labels["grafana_panel"] == "https://play.grafana.org/d/000000012?viewPanel=2"
    assert alert.url is not None and alert.url.startswith("https://play.grafana.org/")


def test_grafanas_resolved_notification_resolves_the_alert(client, services):
    post(client, FIRING)
    answer = post(client, RESOLVED)
    assert answer.status_code == 200
    (alert,) = alerts(services)
    assert alert.status == "resolved"


def test_a_repeated_notification_is_deduplicated_by_fingerprint(client, services):
    post(client, FIRING)
    before = len(texts(services, "alert"))
    answer = post(client, FIRING)
    assert answer.status_code == 200 and answer.get_json()["new"] == 0
    assert len(alerts(services)) == 1 and len(texts(services, "alert")) == before


def test_a_grafana_payload_without_alerts_is_400(client, services):
    answer = post(client, json.dumps({"receiver": "x", "status": "firing", "orgId": 1}).encode())
    assert answer.status_code == 400 and answer.get_json()["status"] == "error"
    assert stored(services) == (0, 0, 0)
