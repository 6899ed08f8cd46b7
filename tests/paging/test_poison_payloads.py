"""Poison values at /webhook/*: a clear 400 and nothing stored, and a stored absurd value breaks no reply."""

from __future__ import annotations

import copy
import json
import time

import pytest
from sqlalchemy import func, select, update

from core import db
from incidents import records
from incidents.sources import MAX_DEPTH, PayloadError, decode, parse_time
from outbox.queue import outbox
from tests.support.alerts import WEBHOOK_TOKEN, fire
from tests.support.apps import app_with, with_settings
from tests.support.phones import Phone
from tests.support.servers import fresh_postgres_database

HEADERS = {"Authorization": f"Bearer {WEBHOOK_TOKEN}", "Content-Type": "application/json"}
DEEP = "[" * 5000 + "]" * 5000


@pytest.fixture
def settings(settings):
    return with_settings(settings, alertmanager_token=WEBHOOK_TOKEN, datadog_token=WEBHOOK_TOKEN)


def alertmanager(**alert) -> dict:
    one = {
        "status": "firing",
        "labels": {"alertname": "Poison", "instance": "web-1:9100"},
        "annotations": {"summary": "s"},
        "startsAt": "2026-01-01T00:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "fingerprint": "f1",
    }
    return {"version": "4", "groupKey": "g", "status": "firing", "alerts": [one | alert]}


def datadog(**fields) -> dict:
    return {"alert_id": "7", "transition": "Triggered", "title": "Queue", "date": "1764216148000"} | fields


def raw(body: dict, marker: str, text: str) -> str:
    """`body` as JSON with the string "<marker>" replaced by raw JSON text (NaN, 1e400, ...)."""
    return json.dumps(body).replace(json.dumps(marker), text)


def am_raw(text: str, field: str = "startsAt") -> str:
    return raw(alertmanager(**{field: "@"}), "@", text)


def dd_raw(text: str, field: str = "date") -> str:
    return raw(datadog(**{field: "@"}), "@", text)


def nothing_stored(services) -> bool:
    with services.engine.connect() as conn:
        counts = [conn.scalar(select(func.count()).select_from(t)) for t in (records.alerts, outbox)]
        counts.append(conn.scalar(select(func.count()).select_from(records.alert_events)))
    return counts == [0, 0, 0]


POISON_ALERTMANAGER = {
    "NaN": am_raw("NaN"),
    "Infinity": am_raw("Infinity"),
    "-Infinity": am_raw("-Infinity"),
    "1e400": am_raw("1e400"),
    "-1e400 anywhere": am_raw("-1e400", "extra"),
    "a 400-digit integer": am_raw("9" * 400, "fingerprint"),
    "a 400-digit truncatedAlerts": raw(alertmanager() | {"truncatedAlerts": "@"}, "@", "1" * 400),
    "a lone high surrogate": am_raw('"\\ud800"', "fingerprint"),
    "a lone low surrogate in a key": am_raw('{"\\udc00": "x"}', "labels"),
    "a lone surrogate in a label": json.dumps(alertmanager(labels={"alertname": "\ud800"})),
    "nesting 5000 deep": am_raw(DEEP, "extra"),
    "nesting 5000 deep of objects": am_raw('{"a":' * 5000 + "1" + "}" * 5000, "annotations"),
    "before 1970": json.dumps(alertmanager(startsAt="1969-12-31T23:59:59Z")),
    "negative epoch": json.dumps(alertmanager(startsAt=-1)),
    "the year 900": json.dumps(alertmanager(startsAt="0900-01-01T00:00:00Z")),
    "centuries ahead": json.dumps(alertmanager(startsAt="2999-01-01T00:00:00Z")),
    "the last second of 9999": json.dumps(alertmanager(startsAt="9999-12-31T23:59:59Z")),
    "epoch ms in the year 3000": json.dumps(alertmanager(startsAt=32503680000000)),
    "a finite but absurd 1e300": json.dumps(alertmanager(startsAt=1e300)),
    "a resolved endsAt ahead": json.dumps(alertmanager(status="resolved", endsAt="2500-01-01T00:00:00Z")),
    "startsAt true": json.dumps(alertmanager(startsAt=True)),
    "startsAt an object": json.dumps(alertmanager(startsAt={"t": 1})),
    "startsAt not a time": json.dumps(alertmanager(startsAt="yesterday")),
    "startsAt unicode digits": json.dumps(alertmanager(startsAt="\u00b2\u00b3")),
    "labels a list": json.dumps(alertmanager(labels=["a"])),
    "a label that is a number": json.dumps(alertmanager(labels={"alertname": 5})),
    "a label that is an object": json.dumps(alertmanager(labels={"alertname": {"a": "b"}})),
    "fingerprint an object": json.dumps(alertmanager(fingerprint={"a": 1})),
    "generatorURL a list": json.dumps(alertmanager(generatorURL=["x"])),
    "status a number": json.dumps(alertmanager(status=1)),
    "an alert that is a string": json.dumps({"alerts": ["x"]}),
    "groupKey an object": json.dumps(alertmanager() | {"groupKey": {"a": 1}}),
    "truncatedAlerts true": json.dumps(alertmanager() | {"truncatedAlerts": True}),
    "truncatedAlerts a string": json.dumps(alertmanager() | {"truncatedAlerts": "3"}),
    "truncatedAlerts huge": json.dumps(alertmanager() | {"truncatedAlerts": 10**18}),
    "commonLabels a string": json.dumps(alertmanager() | {"commonLabels": "x"}),
    "a UTF-8 BOM": "\ufeff" + json.dumps(alertmanager()),
}

POISON_DATADOG = {
    "NaN": dd_raw("NaN"),
    "Infinity": dd_raw("Infinity"),
    "1e400": dd_raw("1e400"),
    "a 400-digit alert id": dd_raw("7" * 400, "alert_id"),
    "a lone surrogate": dd_raw('"\\udfff"', "title"),
    "nesting 5000 deep": dd_raw(DEEP, "message"),
    "before 1970": json.dumps(datadog(date=-86400000)),
    "centuries ahead (ms)": json.dumps(datadog(date="99999999999999")),
    "a date that is a list": json.dumps(datadog(date=[1])),
    "alert_id an object": json.dumps(datadog(alert_id={"a": 1})),
    "transition a list": json.dumps(datadog(transition=["Triggered"])),
    "tags an object": json.dumps(datadog(tags={"env": "prod"})),
    "tags with an object": json.dumps(datadog(tags=["env:prod", {"a": 1}])),
    "title true": json.dumps(datadog(title=True)),
    "priority a list": json.dumps(datadog(priority=["P1"])),
    "the default payload with an absurd date": json.dumps({"title": "[Triggered] Disk", "date": 1e300}),
}


def assert_refused(response, services) -> None:
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.json["status"] == "error" and response.json["message"]
    assert nothing_stored(services)


@pytest.mark.parametrize("body", POISON_ALERTMANAGER.values(), ids=POISON_ALERTMANAGER.keys())
def test_poison_alertmanager_values_get_a_400_and_store_nothing(client, services, body):
    assert_refused(
        client.post("/webhook/alertmanager", data=body.encode("utf-8", "surrogatepass"), headers=HEADERS),
        services,
    )


@pytest.mark.parametrize("body", POISON_DATADOG.values(), ids=POISON_DATADOG.keys())
def test_poison_datadog_values_get_a_400_and_store_nothing(client, services, body):
    assert_refused(
        client.post("/webhook/datadog", data=body.encode("utf-8", "surrogatepass"), headers=HEADERS), services
    )


def test_the_error_names_the_field_and_the_problem(client):
    response = client.post(
        "/webhook/alertmanager", json=alertmanager(startsAt="2999-01-01T00:00:00Z"), headers=HEADERS
    )
    assert "alerts[0].startsAt" in response.json["message"] and "plausible time" in response.json["message"]
    response = client.post("/webhook/alertmanager", data=am_raw("NaN"), headers=HEADERS)
    assert response.json["message"] == "NaN is not a JSON number"
    response = client.post("/webhook/alertmanager", data=am_raw(DEEP, "extra"), headers=HEADERS)
    assert response.json["message"] == f"body nests deeper than {MAX_DEPTH} levels"


@pytest.mark.parametrize(
    "value, seconds",
    [
        ("2026-01-01T00:00:00Z", 1767225600.0),
        ("2026-01-01T00:00:00.123456789Z", 1767225600.123456),
        ("0001-01-01T00:00:00Z", None),  # Go's zero time: no end yet
        ("", None),
        (None, None),
        (12345, 12345.0),
        ("1764216148000", 1764216148.0),  # epoch milliseconds, as Datadog sends them
        (1764216148.5, 1764216148.5),
    ],
)
def test_real_times_still_parse(value, seconds):
    assert parse_time(value) == pytest.approx(seconds) if seconds else parse_time(value) is None


def test_a_start_a_few_minutes_ahead_of_our_clock_is_accepted(client, services):
    soon = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 300))
    response = client.post("/webhook/alertmanager", json=alertmanager(startsAt=soon), headers=HEADERS)
    assert response.status_code == 200 and response.json["new"] == 1


def test_deep_brackets_inside_strings_are_only_text(client, services):
    body = alertmanager(annotations={"summary": "[" * 5000 + "{" * 5000})
    assert client.post("/webhook/alertmanager", json=body, headers=HEADERS).status_code == 200


def test_nesting_at_the_limit_is_still_json():
    assert decode(("[" * MAX_DEPTH + "]" * MAX_DEPTH).encode()) == eval("[" * MAX_DEPTH + "]" * MAX_DEPTH)
    with pytest.raises(PayloadError):
        decode(("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1)).encode())


def test_paired_surrogates_are_real_characters(client, services):
    body = json.dumps(alertmanager(labels={"alertname": "Fire \U0001f525"}))  # \ud83d\udd25 escapes
    assert "\\ud83d\\udd25" in body
    response = client.post("/webhook/alertmanager", data=body, headers=HEADERS)
    assert response.status_code == 200
    with services.engine.connect() as conn:
        assert records.latest(conn).name == "Fire \U0001f525"


def corrupt(services, alert_id: int, **values) -> None:
    with services.engine.begin() as conn:
        conn.execute(update(records.alerts).where(records.alerts.c.id == alert_id).values(**values))


ABSURD = [
    {"started_at": float("inf")},
    {"started_at": float("-inf"), "last_seen": float("inf")},
    {"started_at": 1e300},
    {"started_at": -1e300},
    {"labels": "{not json"},
    {"labels": "[1, 2]"},
    {"snoozed_until": float("inf"), "acked_at": float("-inf")},
]


@pytest.mark.parametrize("values", ABSURD, ids=[",".join(v) + f"-{i}" for i, v in enumerate(ABSURD)])
def test_one_stored_absurd_alert_breaks_no_alerts_reply(client, services, values):
    good = fire(client, "DiskFull")
    bad = fire(client, "Poisoned")
    corrupt(services, bad, **values)
    phone = Phone(client)
    for words in ("alerts", "alerts recent", f"alerts {bad}", f"alerts {good} {bad}"):
        reply = phone.text(words)
        assert "failed inside Operator" not in reply and "Traceback" not in reply, (words, reply)
        assert f"#{bad}" in reply, (words, reply)
    assert "DiskFull" in phone.text("alerts")
    assert "Acked" in phone.text(f"ack {bad}") and "Resolved" in phone.text(f"resolve {bad}")
    assert "Resolved" in phone.text(f"resolve {good}")
    assert "#" in phone.text("alerts")  # "No open alerts. Last: #2 resolved ..."


def test_an_infinite_start_stored_on_postgresql_breaks_no_reply(settings):
    url, drop = fresh_postgres_database()
    try:
        with app_with(with_settings(settings, database_url=url)) as app:
            client, services = app.test_client(), app.extensions["operator"]
            fire(client, "DiskFull")
            bad = fire(client, "Poisoned")
            corrupt(services, bad, started_at=float("nan"), resolved_at=float("inf"))
            reply = Phone(client).text("alerts")
            assert reply.startswith("2 open:") and "DiskFull" in reply and "Poisoned" in reply
    finally:
        drop()


def test_an_absurd_stored_start_reads_as_when_operator_opened_it(client, services):
    bad = fire(client, "Poisoned")
    corrupt(services, bad, started_at=float("inf"))
    with services.engine.connect() as conn:
        alert = records.get(conn, bad)
    assert alert.started_at == alert.opened_at and alert.started_at <= db.now()


def test_a_datadog_alert_with_a_valid_date_is_accepted_after_the_poison(client, services):
    client.post("/webhook/datadog", data=dd_raw("NaN"), headers=HEADERS)
    response = client.post("/webhook/datadog", json=copy.deepcopy(datadog()), headers=HEADERS)
    assert response.status_code == 200 and response.json["new"] == 1


@pytest.mark.parametrize("values", [{"status": "exploded"}, {"source": "nagios"}])
def test_a_row_that_cannot_be_read_is_left_out_of_lists_not_fatal_to_them(client, services, values):
    good = fire(client, "DiskFull")
    bad = fire(client, "Poisoned")
    corrupt(services, bad, **values)
    phone = Phone(client)
    for words in ("alerts", "alerts recent"):
        reply = phone.text(words)
        assert "failed inside Operator" not in reply and f"#{good}" in reply, (words, reply)
    with services.engine.connect() as conn:
        assert [a.id for a in records.loud_webhook_alerts(conn, db.now())] == [good]


# 900 KB, under the 1 MiB limit: the old nesting check took minutes on bodies like these.
ESCAPED_QUOTES = 450_000


@pytest.mark.parametrize(
    "body",
    [
        '\\"' * ESCAPED_QUOTES,  # escaped quotes outside any string: not JSON
        '["' + '\\"' * ESCAPED_QUOTES,  # a string that never closes
        '{"a": [' + '"\\"' * (ESCAPED_QUOTES * 2 // 3) + "]}",  # strings that never close, one after another
    ],
    ids=["bare", "one unclosed string", "many unclosed strings"],
)
def test_a_large_body_of_escaped_quotes_is_refused_as_not_json(client, services, body):
    assert len(body) >= 900_000
    response = client.post("/webhook/alertmanager", data=body, headers=HEADERS)
    assert response.status_code == 400 and "not valid JSON" in response.json["message"]
    assert nothing_stored(services)


def test_a_large_summary_of_escaped_quotes_and_brackets_is_stored(client, services):
    summary = '"[{' * 225_000  # 900 KB once encoded: every quote escaped
    body = json.dumps(alertmanager(annotations={"summary": summary}))
    assert 900_000 < len(body) < 1_000_000
    response = client.post("/webhook/alertmanager", data=body, headers=HEADERS)
    assert response.status_code == 200 and response.json["new"] == 1
    with services.engine.connect() as conn:
        assert records.latest(conn).summary.startswith('"[{"[{')


def test_nesting_past_the_limit_is_found_after_many_escaped_quotes(client, services):
    body = '{"s": "' + '\\"' * ESCAPED_QUOTES + '", "deep": ' + "[" * 40 + "]" * 40 + "}"
    response = client.post("/webhook/alertmanager", data=body, headers=HEADERS)
    assert response.json["message"] == f"body nests deeper than {MAX_DEPTH} levels"


@pytest.mark.parametrize("message", ["[" * 5000, "[" * 4000 + "]" * 1000, "[x](" * 1250])
def test_a_datadog_message_of_brackets_is_stored_with_its_alert(client, services, message):
    """The message's markdown links are taken out in one pass: 5,000 brackets once took minutes."""
    response = client.post("/webhook/datadog", json=datadog(message=message), headers=HEADERS)
    assert response.status_code == 200 and response.json["new"] == 1
