"""PagerDuty's Events API v2 at /v2/enqueue: the documented requests, answers and error shapes."""

from __future__ import annotations

import json

import pytest

from tests.support.apps import app_with
from tests.support.integrations import PD_KEY, alerts, entry, stored, with_integrations
from tests.support.oncall import ALICE, CAROL, DAVE, payments_and_infra, texts


@pytest.fixture
def settings(settings):
    return with_integrations(settings, entry("pd"))


def trigger(**changes) -> dict:
    event = {
        "routing_key": PD_KEY,
        "event_action": "trigger",
        "dedup_key": "disk-web-1",
        "payload": {
            "summary": "Disk full on web-1",
            "source": "web-1.example.com",
            "severity": "critical",
            "component": "postgres",
            "group": "prod-datapipe",
            "class": "disk",
            "timestamp": "2026-12-07T08:42:58.315+0000",
            "custom_details": {"free": "0%", "load avg": 0.75},
        },
        "links": [{"href": "https://grafana.example.com/d/disk", "text": "Disk"}],
        "images": [{"src": "https://example.com/graph.png"}],
    }
    event.update(changes)
    return event


def post(client, event, path="/v2/enqueue"):
    return client.post(path, data=json.dumps(event), content_type="application/json")


def test_a_trigger_is_answered_as_pagerduty_does_and_pages(client, services):
    answer = post(client, trigger())
    assert answer.status_code == 202
    assert answer.get_json() == {"status": "success", "message": "Event processed", "dedup_key": "disk-web-1"}
    (alert,) = alerts(services)
    assert (alert.source, alert.name, alert.severity, alert.status) == (
        "pagerduty",
        "Disk full on web-1",
        "critical",
        "firing",
    )
    assert alert.url == "https://grafana.example.com/d/disk"
    assert alert.labels["component"] == "postgres" and alert.labels["class"] == "disk"
    assert json.loads(alert.labels["custom_details"]) == {"free": "0%", "load avg": 0.75}
    assert "graph.png" in alert.labels["images"]
    assert [t[1] for t in texts(services, "alert")][0].startswith(
        "FIRING Disk full on web-1 web-1.example.com #1"
    )


def test_a_trigger_without_a_dedup_key_gets_one_generated_and_returned(client, services):
    event = trigger()
    del event["dedup_key"]
    first, second = post(client, event).get_json(), post(client, event).get_json()
    assert len(first["dedup_key"]) == 32 and first["dedup_key"] != second["dedup_key"]
    assert len(alerts(services)) == 2


def test_a_repeated_trigger_applies_to_the_open_alert_without_paging_again(client, services):
    post(client, trigger())
    post(client, trigger())
    assert len(alerts(services)) == 1
    assert len(texts(services, "alert")) == 2  # the two pager numbers, once


def test_resolve_closes_the_open_alert_and_tells_who_was_paged(client, services):
    post(client, trigger())
    answer = post(client, {"routing_key": PD_KEY, "event_action": "resolve", "dedup_key": "disk-web-1"})
    assert answer.status_code == 202 and answer.get_json()["dedup_key"] == "disk-web-1"
    assert alerts(services)[0].status == "resolved"
    assert len(texts(services, "recovery")) == 2


def test_acknowledge_marks_the_open_alert_taken(client, services):
    post(client, trigger())
    post(client, {"routing_key": PD_KEY, "event_action": "acknowledge", "dedup_key": "disk-web-1"})
    assert alerts(services)[0].acked_at is not None


@pytest.mark.parametrize("action", ["acknowledge", "resolve"])
def test_acknowledge_or_resolve_of_an_unknown_key_is_accepted_and_changes_nothing(client, services, action):
    answer = post(client, {"routing_key": PD_KEY, "event_action": action, "dedup_key": "never-seen"})
    assert answer.status_code == 202
    assert stored(services)[0] == 0 and texts(services) == []


@pytest.mark.parametrize(
    "changes, error",
    [
        ({"event_action": "explode"}, "'event_action' must be one of trigger, acknowledge or resolve"),
        ({"payload": {"source": "x", "severity": "info"}}, "'payload.summary' is missing or blank"),
        ({"payload": {"summary": "x", "severity": "info"}}, "'payload.source' is missing or blank"),
        (
            {"payload": {"summary": "x", "source": "y", "severity": "high"}},
            "'payload.severity' must be one of critical, error, warning or info",
        ),
        (
            {"payload": {"summary": "x" * 1025, "source": "y", "severity": "info"}},
            "'payload.summary' must be at most 1024 characters",
        ),
        ({"dedup_key": "k" * 256}, "'dedup_key' must be at most 255 characters"),
        ({"routing_key": "short"}, "Length of 'routing_key' is incorrect (should be 32 characters)"),
        ({"routing_key": "b" * 32}, "Invalid routing key"),
    ],
)
def test_an_invalid_event_gets_pagerdutys_400_and_nothing_is_stored(client, services, changes, error):
    answer = post(client, trigger(**changes))
    assert answer.status_code == 400
    body = answer.get_json()
    assert body["status"] == "invalid event" and body["message"] == "Event object is invalid"
    assert error in body["errors"]
    assert stored(services) == (0, 0, 0)


def test_a_resolve_without_a_dedup_key_is_invalid(client):
    answer = post(client, {"routing_key": PD_KEY, "event_action": "resolve"})
    assert answer.get_json()["errors"] == ["'dedup_key' is required for resolve events"]


def test_a_body_over_512_kb_is_413_and_stores_nothing(client, services):
    event = trigger()
    event["payload"]["custom_details"] = {"blob": "x" * (512 * 1024)}
    assert post(client, event).status_code == 413
    assert stored(services) == (0, 0, 0)


def test_a_change_event_is_recorded_and_pages_nobody(client, services):
    change = {"routing_key": PD_KEY, "payload": {"summary": "Deployed v2.3 to payments", "source": "ci"}}
    answer = post(client, change, "/v2/change/enqueue")
    assert answer.status_code == 202 and answer.get_json()["status"] == "success"
    assert stored(services) == (0, 1, 0)


def test_the_doors_under_the_integrations_name_take_the_same_events(client, services):
    assert post(client, trigger(), "/integrations/pd/v2/enqueue").status_code == 202
    assert post(client, trigger(dedup_key="other"), "/integrations/pd").status_code == 202
    assert post(client, trigger(), "/integrations/other/v2/enqueue").get_json()["errors"] == [
        "Invalid routing key"
    ]


def test_past_the_limit_the_sender_gets_429_with_retry_after(settings):
    with app_with(with_integrations(settings, entry("pd", limit="2 per 1 minute"))) as app:
        client = app.test_client()
        assert [post(client, trigger()).status_code for _ in range(3)] == [202, 202, 429]
        assert int(post(client, trigger()).headers["Retry-After"]) >= 1


def test_an_integration_with_a_team_pages_that_teams_on_call(settings):
    teams = payments_and_infra()
    with app_with(with_integrations(settings, entry("pd", team="payments"), sections=teams)) as app:
        client = app.test_client()
        post(client, trigger())  # no team label: without the integration's team, infra would be paged
        to = {t[0] for t in texts(app.extensions["operator"], "alert")}
        assert to == {ALICE} and not to & {CAROL, DAVE}
