"""The dead man's switch: pings over /heartbeat/<name> and Alertmanager's Watchdog, pages when they stop."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from sqlalchemy import select

from config import Heartbeat
from core import db
from heartbeats import pings, watch
from incidents import escalation, records, reminders
from outbox import queue
from tests.support.alerts import alert
from tests.support.apps import app_with, with_settings
from tests.support.heartbeats import HEARTBEAT_TOKEN, pinged
from tests.support.paths import PAYLOADS
from tests.support.phones import ADMIN, RESPONDER, Phone
from tests.support.servers import fresh_postgres_database

AM_TOKEN = "am-token-heartbeats"
BOSS = "+15555550170"
HEARTBEATS = (
    Heartbeat("backup", 600.0),
    Heartbeat("nightly", 3600.0, recipients=(ADMIN,)),
    Heartbeat("pipeline", 300.0, watchdog="Watchdog"),
)


@pytest.fixture
def settings(settings):
    return with_settings(
        settings,
        heartbeats=HEARTBEATS,
        heartbeat_token=HEARTBEAT_TOKEN,
        alertmanager_token=AM_TOKEN,
        rate_limit="1000 per minute",
    )


def ping(client, name: str = "backup", **kwargs):
    return client.get(f"/heartbeat/{name}", query_string={"token": HEARTBEAT_TOKEN}, **kwargs)


def texts(services, kind: str | None = None) -> list:
    o = queue.outbox.c
    query = select(queue.outbox).order_by(o.id)
    with services.engine.connect() as conn:
        return conn.execute(query if kind is None else query.where(o.kind == kind)).all()


def last_ping(services, name: str):
    with services.engine.connect() as conn:
        return pings.state(conn, name)


def watchdog_payload(name: str = "Watchdog", status: str = "firing") -> dict:
    body = json.loads((PAYLOADS / "alertmanager_watchdog.json").read_text())
    body["status"] = status
    body["groupLabels"]["alertname"] = body["commonLabels"]["alertname"] = name
    for item in body["alerts"]:
        item["labels"]["alertname"], item["status"] = name, status
    return body


def post_alertmanager(client, body: dict):
    response = client.post(
        "/webhook/alertmanager", json=body, headers={"Authorization": f"Bearer {AM_TOKEN}"}
    )
    assert response.status_code == 200, response.json
    return response.json


def silent(services, name: str = "backup", seconds: float = 720.0) -> int:
    """The heartbeat last pinged `seconds` ago; the watch job runs; returns the texts it queued."""
    pinged(services, name, seconds)
    return watch.run(services)


def test_a_ping_is_accepted_with_the_token_in_the_query_or_an_authorization_header(client, services):
    response = ping(client)
    assert response.status_code == 200
    assert response.json == {"status": "ok", "heartbeat": "backup", "was_missing": False}
    first = last_ping(services, "backup").last_seen
    response = client.post("/heartbeat/backup", headers={"Authorization": f"Bearer {HEARTBEAT_TOKEN}"})
    assert response.status_code == 200
    assert last_ping(services, "backup").last_seen >= first


@pytest.mark.parametrize(
    "request_kwargs",
    [
        {},
        {"query_string": {"token": "wrong"}},
        {"query_string": {"token": HEARTBEAT_TOKEN[:-1]}},
        {"query_string": {"token": ""}},
        {"headers": {"Authorization": "Bearer wrong"}},
        {"headers": {"Authorization": f"Basic {HEARTBEAT_TOKEN}"}},
    ],
)
def test_a_ping_without_the_right_token_is_refused_and_records_nothing(client, services, request_kwargs):
    response = client.get("/heartbeat/backup", **request_kwargs)
    assert response.status_code == 401
    assert response.json == {"status": "error", "message": "missing or wrong token"}
    assert last_ping(services, "backup") is None


def test_the_token_never_reaches_the_logs(client, services, caplog):
    caplog.set_level(logging.DEBUG)
    ping(client)
    client.get("/heartbeat/backup", query_string={"token": HEARTBEAT_TOKEN + "x"})
    client.get("/heartbeat/nosuch", query_string={"token": HEARTBEAT_TOKEN})
    silent(services)
    ping(client)
    assert HEARTBEAT_TOKEN not in caplog.text
    assert HEARTBEAT_TOKEN not in (Path(services.settings.log_dir) / "operator.log").read_text()


def test_an_unknown_heartbeat_is_404_and_records_nothing(client, services):
    response = ping(client, "nosuch")
    assert response.status_code == 404
    assert response.json["status"] == "error" and "heartbeats:" in response.json["message"]
    assert last_ping(services, "nosuch") is None


def test_without_a_token_configured_the_endpoint_is_off(settings):
    with app_with(with_settings(settings, heartbeat_token="")) as app:
        response = app.test_client().get("/heartbeat/backup", query_string={"token": ""})
    assert response.status_code == 404
    assert "HEARTBEAT_TOKEN" in response.json["message"]


def test_a_heartbeat_that_never_pinged_does_not_page(services):
    assert watch.run(services, now=db.now() + 30 * 86400) == 0
    assert texts(services) == []


def test_a_silent_heartbeat_pages_once_and_its_next_ping_resolves_it_with_a_recovery(client, services):
    ping(client)
    assert watch.run(services) == 0, "pinged just now"
    assert silent(services, seconds=590) == 0, "within its timeout"
    assert silent(services, seconds=720) == 2
    pages = texts(services, "alert")
    assert sorted(t.to_number for t in pages) == sorted([ADMIN, RESPONDER])
    assert {t.body for t in pages} == {"HEARTBEAT MISSING backup, last seen 12m ago #1"}
    assert watch.run(services) == 0 and len(texts(services, "alert")) == 2, "one page per silence"
    assert Phone(client, RESPONDER).text("alerts") == "1 open:\n#1 MISSING heartbeat backup 2m"

    response = ping(client)
    assert response.json["was_missing"] is True
    assert alert(services, 1).status == "resolved"
    notices = texts(services, "recovery")
    assert sorted(t.to_number for t in notices) == sorted([ADMIN, RESPONDER])
    assert {t.body for t in notices} == {"RESOLVED after 2m heartbeat backup #1"}
    assert watch.run(services) == 0


def test_a_heartbeat_pages_its_own_recipients(client, services):
    ping(client, "nightly")
    assert silent(services, "nightly", 2 * 3600) == 1
    [page] = texts(services, "alert")
    assert (page.to_number, page.body) == (ADMIN, "HEARTBEAT MISSING nightly, last seen 2h ago #1")


def test_a_missing_heartbeat_is_reminded_until_someone_takes_it(client, services):
    ping(client)
    silent(services)
    now = db.now() + services.settings.alert_repeat
    watch.run(services, now)
    sent = texts(services, "reminder")
    assert {t.body for t in sent} == {"STILL MISSING backup, last seen 4h12m ago #1"}
    assert sorted(t.to_number for t in sent) == sorted([ADMIN, RESPONDER])
    assert reminders.run(services, now) == 0, "not reminded a second time as a webhook alert"
    assert Phone(client, RESPONDER).text("ack 1").startswith("Acked #1 heartbeat backup")
    watch.run(services, now + 2 * services.settings.alert_repeat)
    assert len(texts(services, "reminder")) == 2


def test_a_missing_heartbeat_escalates_like_any_alert(client, settings):
    with app_with(with_settings(settings, escalate_after=900.0, escalation_numbers=(BOSS,))) as app:
        services = app.extensions["operator"]
        ping(app.test_client())
        silent(services)
        escalation.run(services, db.now() + 900)
        [text] = texts(services, "escalation")
    assert (text.to_number, text.body) == (
        BOSS,
        "ESCALATED 15m unacked: MISSING heartbeat backup #1: no ping within 10m",
    )


def test_resolving_it_by_hand_holds_until_pings_return_and_the_next_silence_pages_anew(client, services):
    ping(client)
    silent(services)
    assert Phone(client, RESPONDER).text("resolve 1").startswith("Resolved #1 heartbeat backup")
    assert watch.run(services, db.now() + 3600) == 0, "still silent, but someone closed it"
    ping(client)
    assert silent(services) == 2
    assert [t.body for t in texts(services, "alert")][-1] == "HEARTBEAT MISSING backup, last seen 12m ago #2"


def test_silent_again_before_its_resolved_went_out_reopens_the_same_incident(client, services):
    ping(client)
    silent(services)
    ping(client)  # back: the RESOLVED waits RECOVERY_DELAY
    assert silent(services) == 0
    assert alert(services, 1).status == "firing"
    assert {t.status for t in texts(services, "recovery")} == {"dropped"}
    assert len(texts(services, "alert")) == 2


def test_a_heartbeat_removed_from_the_file_closes_its_incident_quietly(client, settings, services):
    ping(client)
    silent(services)
    with app_with(with_settings(settings, heartbeats=HEARTBEATS[1:])) as app:
        watch.run(app.extensions["operator"])
    assert alert(services, 1).status == "resolved"
    assert texts(services, "recovery") == []
    assert last_ping(services, "backup") is None


def test_alertmanagers_watchdog_pings_its_heartbeat_and_never_pages(client, services):
    answer = post_alertmanager(client, watchdog_payload())
    assert (answer["alerts"], answer["texts"], answer["watchdogs"]) == ([], 0, 1)
    assert last_ping(services, "pipeline") is not None
    post_alertmanager(client, watchdog_payload())  # Alertmanager's repeat: the same event, a new ping
    with services.engine.connect() as conn:
        assert records.recent(conn, 10) == []
    assert texts(services) == []
    assert Phone(client).text("alerts") == "No open alerts."


def test_a_silent_watchdog_pages_and_its_return_resolves_it(client, services):
    post_alertmanager(client, watchdog_payload())
    assert silent(services, "pipeline", 400) == 2
    assert {t.body for t in texts(services, "alert")} == {"HEARTBEAT MISSING pipeline, last seen 6m ago #1"}
    post_alertmanager(client, watchdog_payload())
    assert alert(services, 1).status == "resolved"
    assert {t.body for t in texts(services, "recovery")} == {"RESOLVED after 1m heartbeat pipeline #1"}


def test_a_resolved_watchdog_is_not_a_ping_and_does_not_page(client, services):
    post_alertmanager(client, watchdog_payload(status="resolved"))
    assert last_ping(services, "pipeline") is None
    assert texts(services) == []


def test_a_watchdog_no_heartbeat_names_is_still_never_paged(settings):
    with app_with(with_settings(settings, heartbeats=())) as app:
        post_alertmanager(app.test_client(), watchdog_payload())
        assert texts(app.extensions["operator"]) == []


def test_the_watchdog_name_is_configurable(settings):
    renamed = (Heartbeat("pipeline", 300.0, watchdog="DeadMansSwitch"),)
    with app_with(with_settings(settings, heartbeats=renamed)) as app:
        services = app.extensions["operator"]
        answer = post_alertmanager(app.test_client(), watchdog_payload("DeadMansSwitch"))
        assert answer["watchdogs"] == 1 and texts(services) == []
        assert last_ping(services, "pipeline") is not None


def test_a_watchdog_grouped_with_real_alerts_leaves_them_paging_without_it(client, services):
    body = json.loads((PAYLOADS / "alertmanager_firing.json").read_text())
    body["alerts"].append(watchdog_payload()["alerts"][0])
    answer = post_alertmanager(client, body)
    assert answer["watchdogs"] == 1
    assert {t.body for t in texts(services, "alert")} == {"FIRING 3 HighCPU web-1,web-2,web-3 #1"}
    assert last_ping(services, "pipeline") is not None


def test_check_reports_heartbeats_not_armed_yet_and_fails_while_one_is_missing(app, client, services):
    ping(client)
    result = app.test_cli_runner().invoke(args=["check"])
    [line] = [line for line in result.stdout.splitlines() if line.startswith("heartbeats")]
    assert " ok " in line and "3 configured; never pinged (not armed): nightly, pipeline" in line
    pinged(services, "backup", 720)
    result = app.test_cli_runner().invoke(args=["check"])
    assert result.exit_code == 1 and "check(s) failed: heartbeats, worker" in result.stderr
    [line] = [line for line in result.stdout.splitlines() if line.startswith("heartbeats")]
    assert "FAILED" in line and "MISSING backup last seen 12m ago" in line


@pytest.mark.parametrize(
    "path",
    ["/heartbeat/", "/heartbeat/backup/extra", "/heartbeat/%00", "/heartbeat/" + "a" * 5000, "/heartbeat/é"],
)
def test_a_path_that_names_no_heartbeat_gets_a_json_404(client, path):
    response = client.get(path, query_string={"token": HEARTBEAT_TOKEN})
    assert response.status_code == 404 and response.json["status"] == "error"


def test_other_methods_get_a_json_405(client, services):
    response = client.put("/heartbeat/backup", query_string={"token": HEARTBEAT_TOKEN})
    assert response.status_code == 405 and response.json == {"status": "error", "message": "use GET or POST"}
    assert last_ping(services, "backup") is None


def test_the_switch_works_the_same_on_postgresql(settings):
    url, drop = fresh_postgres_database()
    try:
        with app_with(with_settings(settings, database_url=url)) as app:
            services, client = app.extensions["operator"], app.test_client()
            assert ping(client).json["was_missing"] is False
            assert ping(client).status_code == 200, "a second ping updates the same row"
            assert silent(services) == 2
            post_alertmanager(client, watchdog_payload())
            assert ping(client).json["was_missing"] is True
            assert {t.body for t in texts(services, "recovery")} == {"RESOLVED after 2m heartbeat backup #1"}
            assert last_ping(services, "pipeline") is not None
    finally:
        drop()
