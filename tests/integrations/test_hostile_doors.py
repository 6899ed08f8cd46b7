"""Every integration door is as safe as /webhook/alertmanager: strict JSON, size caps, nothing stored
for a refused request, a poison request costing only itself, and a wrong secret refused in the
vendor's own shape. Walks every supported kind, so a new door is covered the day it is added."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from app import create_app
from integrations.entries import SUPPORTED, Kind
from tests.support.integrations import (
    AM_KEY,
    DD_KEY,
    GF_KEY,
    GW_KEY,
    OG_KEY,
    PD_KEY,
    basic,
    entry,
    stored,
    with_integrations,
)
from tests.support.oncall import payments_and_infra, texts
from tests.support.transactions import pattern_matches

MARK = "@poison@"
DEEP = "[" * 5000 + "]" * 5000


def alertmanager(value: object = "web-1") -> dict:
    alert = {
        "status": "firing",
        "labels": {"alertname": "Hostile", "instance": value},
        "startsAt": "2026-01-01T00:00:00Z",
        "fingerprint": "f1",
    }
    return {"version": "4", "groupKey": "g", "status": "firing", "alerts": [alert]}


def grafana(value: object = "web-1") -> dict:
    body = alertmanager(value)
    body["alerts"][0] |= {"dashboardURL": "https://g/d/1", "panelURL": "https://g/d/1?viewPanel=2"}
    body["alerts"][0] |= {"values": {"B": 1.5}, "valueString": "[ var='B' value=1.5 ]"}
    return body | {"orgId": 1, "title": "[FIRING:1] Hostile", "state": "alerting", "message": "m"}


def generic(value: object = "Hostile") -> dict:
    return {"summary": value, "details": "d", "dedup": "h"}


def datadog(value: object = "Queue") -> dict:
    return {"alert_id": "7", "transition": "Triggered", "title": value, "date": "1764216148000"}


def pagerduty(value: object = "web-1") -> dict:
    payload = {"summary": "Hostile", "source": value, "severity": "critical"}
    return {"routing_key": PD_KEY, "event_action": "trigger", "dedup_key": "h", "payload": payload}


def opsgenie(value: object = "Hostile") -> dict:
    return {"message": value, "alias": "h"}


@dataclass(frozen=True)
class Door:
    """One kind's door: where it is, a valid body with a poisonable text field, and its refusal shapes."""

    path: str
    body: Callable[..., dict]
    good: dict[str, str]  # headers with the right secret
    bad: list[dict[str, str]]  # headers (or body changes) with a wrong or missing secret
    refused: int  # the status of a body the vendor would not take
    shape: Callable[[dict], bool]
    limit: int = 1024 * 1024
    time_field: Callable[[object], dict] | None = None
    bad_bodies: list[dict] = field(default_factory=list)


def _webhook_shape(body: dict) -> bool:
    return body["status"] == "error" and bool(body["message"])


def _pd_shape(body: dict) -> bool:
    return (
        body["status"] == "invalid event"
        and body["message"] == "Event object is invalid"
        and bool(body["errors"])
    )


def _og_shape(body: dict) -> bool:
    return bool(body["message"]) and isinstance(body["took"], int | float) and len(body["requestId"]) == 36


def _am_time(value: object) -> dict:
    body = alertmanager()
    body["alerts"][0]["startsAt"] = value
    return body


def _gf_time(value: object) -> dict:
    body = grafana()
    body["alerts"][0]["startsAt"] = value
    return body


def _pd_time(value: object) -> dict:
    body = pagerduty()
    body["payload"]["timestamp"] = value
    return body


DOORS: dict[Kind, Door] = {
    Kind.ALERTMANAGER: Door(
        "/integrations/am",
        alertmanager,
        {"Authorization": f"Bearer {AM_KEY}"},
        [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Bearer {DD_KEY}"}],
        400,
        _webhook_shape,
        time_field=_am_time,
    ),
    Kind.DATADOG: Door(
        "/integrations/dd",
        datadog,
        {"Authorization": f"Bearer {DD_KEY}"},
        [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Bearer {AM_KEY}"}],
        400,
        _webhook_shape,
        time_field=lambda value: datadog() | {"date": value},
    ),
    Kind.GRAFANA: Door(
        "/integrations/gf",
        grafana,
        basic(GF_KEY, user="grafana"),
        [{}, basic("wrong", user="grafana"), {"Authorization": f"Bearer {AM_KEY}"}],
        400,
        _webhook_shape,
        time_field=_gf_time,
    ),
    Kind.GENERIC: Door(
        "/integrations/gw",
        generic,
        {"Authorization": f"Bearer {GW_KEY}"},
        [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Bearer {GF_KEY}"}],
        400,
        _webhook_shape,
    ),
    Kind.PAGERDUTY: Door(
        "/v2/enqueue",
        pagerduty,
        {},
        [],
        400,
        _pd_shape,
        limit=512 * 1024,
        time_field=_pd_time,
        bad_bodies=[{"routing_key": "x" * 32}, {"routing_key": None}, {"routing_key": PD_KEY[:-1]}],
    ),
    Kind.OPSGENIE: Door(
        "/v2/alerts",
        opsgenie,
        {"Authorization": f"GenieKey {OG_KEY}"},
        [{}, {"Authorization": "GenieKey wrong"}, {"Authorization": f"GenieKey {AM_KEY}"}],
        422,
        _og_shape,
    ),
}
# What the wrong-secret answer is: the vendor's 401, PagerDuty's 400 (its Events API has no 401).
UNAUTHORIZED = {
    Kind.ALERTMANAGER: 401,
    Kind.DATADOG: 401,
    Kind.GRAFANA: 401,
    Kind.GENERIC: 401,
    Kind.PAGERDUTY: 400,
    Kind.OPSGENIE: 401,
}

# Raw JSON text put where the door's text field is: what Python's json would let through.
POISON = {
    "NaN": "NaN",
    "Infinity": "Infinity",
    "-Infinity": "-Infinity",
    "1e400": "1e400",
    "a 400-digit integer": "9" * 400,
    "a lone high surrogate": '"\\ud800"',
    "a lone low surrogate in a key": '{"\\udc00": "x"}',
    "nesting 5000 deep": DEEP,
    "objects nested 5000 deep": '{"a":' * 5000 + "1" + "}" * 5000,
    "an object in a text field": '{"a": 1}',
    "a list in a text field": '["x"]',
    "true in a text field": "true",
}
BROKEN = {
    "not JSON": b"alert!",
    "truncated JSON": b'{"alerts": [',
    "not UTF-8": b'{"message": "\xff\xfe"}',
    "a UTF-8 BOM": "\ufeff{}".encode(),
    "a JSON list": b"[]",
    "a JSON string": b'"x"',
}
TIMES = {
    "before 1970": "1969-12-31T23:59:59Z",
    "centuries ahead": "2999-01-01T00:00:00Z",
    "a finite but absurd 1e300": 1e300,
    "not a time": "yesterday",
    "a time that is an object": {"t": 1},
}


@pytest.fixture
def settings(settings):
    return with_integrations(
        settings, entry("am"), entry("dd"), entry("gf"), entry("gw"), entry("pd"), entry("og")
    )


def send(client, door: Door, data: bytes, headers: dict[str, str] | None = None):
    headers = door.good if headers is None else headers
    return client.post(door.path, data=data, headers={"Content-Type": "application/json", **headers})


def poisoned(door: Door, text: str) -> bytes:
    return json.dumps(door.body(MARK)).replace(json.dumps(MARK), text).encode("utf-8", "surrogatepass")


def assert_refused(answer, door: Door, services, status: int | None = None) -> None:
    assert answer.status_code == (status or door.refused), answer.get_data(as_text=True)
    assert door.shape(answer.get_json())
    assert stored(services) == (0, 0, 0)


def test_every_supported_kind_has_a_door_in_this_suite():
    assert set(DOORS) == set(SUPPORTED)


@pytest.mark.parametrize("kind", DOORS)
@pytest.mark.parametrize("text", POISON.values(), ids=POISON.keys())
def test_poison_values_are_refused_in_the_vendors_shape_and_store_nothing(client, services, kind, text):
    door = DOORS[kind]
    assert_refused(send(client, door, poisoned(door, text)), door, services)


@pytest.mark.parametrize("kind", DOORS)
@pytest.mark.parametrize("data", BROKEN.values(), ids=BROKEN.keys())
def test_bodies_that_are_not_an_alert_are_refused_and_store_nothing(client, services, kind, data):
    door = DOORS[kind]
    assert_refused(send(client, door, data), door, services)


@pytest.mark.parametrize("kind", [k for k, d in DOORS.items() if d.time_field])
@pytest.mark.parametrize("value", TIMES.values(), ids=TIMES.keys())
def test_implausible_times_are_refused_and_store_nothing(client, services, kind, value):
    door = DOORS[kind]
    assert door.time_field is not None
    assert_refused(send(client, door, json.dumps(door.time_field(value)).encode()), door, services)


@pytest.mark.parametrize("kind", DOORS)
def test_a_body_past_the_doors_size_cap_is_413_and_stores_nothing(client, services, kind):
    door = DOORS[kind]
    data = poisoned(door, json.dumps("x" * door.limit))
    answer = send(client, door, data)
    assert answer.status_code == 413
    assert stored(services) == (0, 0, 0)


@pytest.mark.parametrize("kind", DOORS)
def test_a_wrong_or_missing_secret_gets_the_vendors_refusal_and_stores_nothing(client, services, kind):
    door = DOORS[kind]
    good = json.dumps(door.body()).encode()
    for headers in door.bad:
        assert_refused(send(client, door, good, headers), door, services, UNAUTHORIZED[kind])
    for changes in door.bad_bodies:
        assert_refused(
            send(client, door, json.dumps(door.body() | changes).encode()), door, services, UNAUTHORIZED[kind]
        )


@pytest.mark.parametrize("kind", DOORS)
def test_a_poison_request_costs_only_itself_and_the_next_good_one_pages(client, services, kind):
    door = DOORS[kind]
    for text in POISON.values():
        send(client, door, poisoned(door, text))
    answer = send(client, door, json.dumps(door.body()).encode())
    assert answer.status_code in (200, 202), answer.get_data(as_text=True)
    alerts, _, _ = stored(services)
    assert alerts == 1 and len(texts(services, "alert")) == 2  # the two pager numbers, once


@pytest.mark.parametrize("kind", list(DOORS), ids=str)
def test_every_door_matches_team_patterns_before_its_write_transaction(settings, kind):
    """A slow pattern must never hold the store: matching happens with no transaction open."""
    start = (datetime.now(UTC) - timedelta(hours=1)).replace(microsecond=0).isoformat()
    sections = payments_and_infra(start=start)
    sections["teams"]["payments"]["match"] = {"alertname": "=~nomatch.*"}
    names = ("am", "dd", "gf", "gw", "pd", "og")
    app = create_app(with_integrations(settings, *(entry(n) for n in names), sections=sections))
    engine = app.extensions["operator"].engine
    door = DOORS[kind]
    try:
        with pattern_matches(engine) as inside:
            answer = send(app.test_client(), door, json.dumps(door.body()).encode())
        assert answer.status_code < 300, answer.data
        assert inside and not any(inside), "a team pattern was matched inside a write transaction"
    finally:
        app.extensions["operator"].close()
