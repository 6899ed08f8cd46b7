"""Opsgenie's Alert API at /v2/alerts: create, close, acknowledge, notes, updates, and its error shape."""

from __future__ import annotations

import json
import uuid

import pytest

from incidents import records
from tests.support.apps import app_with
from tests.support.integrations import OG_KEY, alerts, entry, stored, with_integrations
from tests.support.oncall import texts

GENIE = {"Authorization": f"GenieKey {OG_KEY}"}


@pytest.fixture
def settings(settings):
    return with_integrations(settings, entry("og"))


def create(**changes) -> dict:
    body = {
        "message": "API latency above 2s",
        "alias": "latency-api",
        "description": "p99 latency is 2.4s on api-1",
        "priority": "P1",
        "tags": ["api", "latency"],
        "details": {"team": "payments", "region": "eu"},
        "source": "prometheus",
        "entity": "api-1",
        "responders": [{"type": "team", "name": "payments"}],
        "note": "first seen after the deploy",
    }
    body.update(changes)
    return body


def post(client, path, body=None, headers=GENIE, method="post"):
    data = None if body is None else json.dumps(body)
    return getattr(client, method)(path, data=data, content_type="application/json", headers=headers)


def accepted(answer) -> bool:
    body = answer.get_json()
    uuid.UUID(body["requestId"])
    return (
        answer.status_code == 202 and body["result"] == "Request will be processed" and 0 <= body["took"] < 5
    )


def test_create_is_answered_as_opsgenie_does_and_pages(client, services):
    assert accepted(post(client, "/v2/alerts", create()))
    (alert,) = alerts(services)
    assert (alert.source, alert.name, alert.summary, alert.severity) == (
        "opsgenie",
        "API latency above 2s",
        "p99 latency is 2.4s on api-1",
        "critical",
    )
    assert alert.labels["tags"] == "api,latency" and alert.labels["region"] == "eu"
    assert alert.places == "api-1"
    assert texts(services, "alert")[0][1].startswith("FIRING API latency above 2s api-1 #1")
    with services.engine.connect() as conn:
        assert any("first seen after the deploy" in n for n in records.notes(conn, alert.id, "note:"))


@pytest.mark.parametrize(
    "priority, severity",
    [("P1", "critical"), ("P2", "critical"), ("P3", "error"), ("P4", "warning"), ("P5", "info")],
)
def test_priorities_map_to_severities(client, services, priority, severity):
    post(client, "/v2/alerts", create(priority=priority))
    assert alerts(services)[0].severity == severity


def test_a_create_with_the_alias_of_an_open_alert_applies_to_it(client, services):
    post(client, "/v2/alerts", create())
    post(client, "/v2/alerts", create())
    assert len(alerts(services)) == 1 and len(texts(services, "alert")) == 2


def test_close_by_alias_resolves(client, services):
    post(client, "/v2/alerts", create())
    answer = post(client, "/v2/alerts/latency-api/close?identifierType=alias", {"source": "am", "note": "ok"})
    assert accepted(answer)
    assert alerts(services)[0].status == "resolved"


def test_close_by_id_resolves(client, services):
    post(client, "/v2/alerts", create())
    assert accepted(post(client, "/v2/alerts/1/close", {}))
    assert alerts(services)[0].status == "resolved"


def test_acknowledge_and_notes_by_tiny_id(client, services):
    post(client, "/v2/alerts", create())
    assert accepted(post(client, "/v2/alerts/1/acknowledge?identifierType=tiny", {"user": "ann"}))
    assert accepted(post(client, "/v2/alerts/1/notes?identifierType=tiny", {"note": "looking"}))
    alert = alerts(services)[0]
    assert alert.acked_at is not None
    with services.engine.connect() as conn:
        assert any(n.endswith(":looking") for n in records.notes(conn, alert.id, "note:"))


def test_alertmanagers_message_and_description_updates_change_the_alert(client, services):
    post(client, "/v2/alerts", create())
    path = "/v2/alerts/latency-api/{}?identifierType=alias"
    assert accepted(post(client, path.format("message"), {"message": "API latency above 3s"}, method="put"))
    assert accepted(post(client, path.format("description"), {"description": "now 3.1s"}, method="put"))
    alert = alerts(services)[0]
    assert (alert.name, alert.summary) == ("API latency above 3s", "now 3.1s")


@pytest.mark.parametrize("action", ["close", "acknowledge"])
def test_an_unknown_alias_is_accepted_and_changes_nothing(client, services, action):
    assert accepted(post(client, f"/v2/alerts/nope/{action}?identifierType=alias", {}))
    assert stored(services) == (0, 0, 0)


def error_shape(answer, status: int) -> dict:
    body = answer.get_json()
    assert answer.status_code == status
    uuid.UUID(body["requestId"])
    assert isinstance(body["message"], str) and isinstance(body["took"], float | int)
    return body


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"message": ""}, "message"),
        ({"message": None}, "message"),
        ({"alias": "a" * 513}, "alias"),
        ({"priority": "P9"}, "priority"),
        ({"tags": "api"}, "tags"),
        ({"details": {"nested": {"no": 1}}}, "details"),
    ],
)
def test_a_refused_create_gets_opsgenies_422_and_nothing_is_stored(client, services, changes, field):
    body = error_shape(post(client, "/v2/alerts", create(**changes)), 422)
    assert field in body["errors"]
    assert stored(services) == (0, 0, 0)


def test_a_long_message_is_cut_to_130_characters(client, services):
    post(client, "/v2/alerts", create(message="m" * 300))
    assert len(alerts(services)[0].name) == 130


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "GenieKey wrong"}, {"Authorization": f"Bearer {OG_KEY}x"}]
)
def test_a_wrong_or_missing_key_gets_opsgenies_401_and_nothing_is_stored(client, services, headers):
    error_shape(post(client, "/v2/alerts", create(), headers=headers), 401)
    assert stored(services) == (0, 0, 0)


def test_an_unknown_identifier_type_is_422(client):
    error_shape(post(client, "/v2/alerts/x/close?identifierType=name", {}), 422)


def test_the_door_under_the_integrations_name_takes_the_key_as_bearer_or_token(client, services):
    assert accepted(
        post(client, "/integrations/og/v2/alerts", create(), headers={"Authorization": f"Bearer {OG_KEY}"})
    )
    assert accepted(post(client, f"/integrations/og/v2/alerts?token={OG_KEY}", create(alias="b"), headers={}))
    assert accepted(post(client, f"/integrations/og?token={OG_KEY}", create(alias="c"), headers={}))
    assert len(alerts(services)) == 3


def test_past_the_limit_opsgenies_429_with_retry_after(settings):
    with app_with(with_integrations(settings, entry("og", limit="1 per 1 minute"))) as app:
        client = app.test_client()
        assert accepted(post(client, "/v2/alerts", create()))
        answer = post(client, "/v2/alerts", create())
        error_shape(answer, 429)
        assert int(answer.headers["Retry-After"]) >= 1
