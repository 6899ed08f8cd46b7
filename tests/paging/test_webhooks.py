"""The alert webhooks: captured payloads in, deduplicated records and outbox texts out."""

from __future__ import annotations

import base64
import copy
import json
import threading

import pytest
from sqlalchemy import create_engine, func, select, text

from app import create_app
from core import db
from incidents import escalation, records
from incidents.sources import PayloadError
from incidents.sources.alertmanager import parse_alertmanager
from incidents.sources.datadog import parse_datadog
from outbox.queue import outbox
from tests.support.apps import with_settings
from tests.support.paths import PAYLOADS
from tests.support.phones import ADMIN, RESPONDER, VIEWER
from tests.support.servers import fresh_postgres_database

AM_TOKEN = "am-token-4f1b2c"
DD_TOKEN = "dd-token-9a8b7c"
ESCALATION = "+15555550177"


def payload(name: str) -> dict:
    return json.loads((PAYLOADS / f"{name}.json").read_text())


@pytest.fixture
def settings(settings):
    return with_settings(
        settings,
        alertmanager_token=AM_TOKEN,
        datadog_token=DD_TOKEN,
        escalation_numbers=(ESCALATION,),
        escalate_after=600.0,
    )


def post_am(client, body, path: str = "/webhook/alertmanager", token: str = AM_TOKEN, **kwargs):
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.post(path, data=data, headers=headers, content_type="application/json", **kwargs)


def post_dd(client, body, token: str = DD_TOKEN):
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.post("/webhook/datadog", data=data, headers=headers, content_type="application/json")


def texts(services, kind: str | None = None) -> list:
    with services.engine.connect() as conn:
        query = select(outbox).order_by(outbox.c.id)
        if kind:
            query = query.where(outbox.c.kind == kind)
        return conn.execute(query).all()


def stored_alerts(services) -> list[records.Alert]:
    with services.engine.connect() as conn:
        rows = conn.execute(select(records.alerts).order_by(records.alerts.c.id)).all()
        return [records.Alert.from_row(r) for r in rows]


def many(count: int, group_key: str = '{}:{alertname="Flood"}') -> dict:
    alerts = [
        {
            "status": "firing",
            "labels": {"alertname": "Flood", "instance": f"host-{i}:9100", "job": "node"},
            "annotations": {"summary": "flood"},
            "startsAt": "2026-01-01T00:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus/graph",
            "fingerprint": f"{i:016x}",
        }
        for i in range(count)
    ]
    return {
        "version": "4",
        "groupKey": group_key,
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "operator",
        "groupLabels": {"alertname": "Flood"},
        "commonLabels": {"alertname": "Flood", "job": "node"},
        "commonAnnotations": {"summary": "flood"},
        "externalURL": "http://alertmanager",
        "alerts": alerts,
    }


# --- parsers -------------------------------------------------------------------------------


def test_it_parses_a_captured_alertmanager_group_into_one_record_with_three_places():
    alerts = parse_alertmanager(payload("alertmanager_firing"))
    assert [a.place for a in alerts] == ["web-1", "web-2", "web-3"]
    assert len({a.record_key for a in alerts}) == 1
    assert len({a.event_key for a in alerts}) == 3
    assert alerts[0].labels == {
        "alertname": "HighCPU",
        "instance": "127.0.0.1:53665",
        "job": "node",
        "severity": "page",
    }


def test_it_gives_an_ha_peers_copy_the_same_event_keys():
    first = parse_alertmanager(payload("alertmanager_firing"))
    peer = parse_alertmanager(payload("alertmanager_firing_ha_peer"))
    assert [a.event_key for a in first] == [a.event_key for a in peer]


def test_it_gives_the_resolved_notification_new_event_keys():
    firing = {a.event_key for a in parse_alertmanager(payload("alertmanager_firing"))}
    resolved = parse_alertmanager(payload("alertmanager_resolved"))
    assert firing.isdisjoint(a.event_key for a in resolved)
    assert all(a.ended_at and a.ended_at - a.started_at == pytest.approx(5.0) for a in resolved)


def test_it_keeps_the_truncated_count():
    alerts = parse_alertmanager(payload("alertmanager_truncated"))
    assert len(alerts) == 2 and alerts[0].truncated == 1


@pytest.mark.parametrize(
    "name, status, word, title",
    [
        ("datadog_custom_triggered", "firing", "FIRING", "Payment API error rate high"),
        ("datadog_custom_warn", "firing", "WARN", "Payment API error rate high"),
        ("datadog_custom_recovered", "resolved", "RESOLVED", "Payment API error rate high"),
        ("datadog_default_triggered", "firing", "FIRING", "Disk almost full"),
        ("datadog_default_no_data", "firing", "NO DATA", "Billing cron heartbeat"),
        ("datadog_default_recovered", "resolved", "RESOLVED", "Disk almost full"),
    ],
)
def test_it_reads_datadog_transitions(name, status, word, title):
    event = parse_datadog(payload(name))
    assert (event.status, event.transition, event.name) == (status, word, title)


def test_it_strips_datadog_markup_from_the_default_body():
    event = parse_datadog(payload("datadog_default_triggered"))
    assert "%%%" not in event.summary and "@webhook" not in event.summary
    assert event.summary.startswith("Disk almost full on db-1")
    assert event.place == "db-1"


def test_it_identifies_a_datadog_incident_across_its_transitions():
    keys = {parse_datadog(payload(n)).record_key for n in ("datadog_custom_warn", "datadog_custom_recovered")}
    assert len(keys) == 1


@pytest.mark.parametrize(
    "body",
    [
        [],
        "text",
        {"alerts": {}},
        {"alerts": [1]},
        {"alerts": [{"status": "pending", "labels": {}}]},
        {"alerts": [{"status": "firing", "labels": ["a"]}]},
        {"alerts": [], "truncatedAlerts": -1},
    ],
)
def test_it_refuses_payloads_that_are_not_alertmanager_shaped(body):
    with pytest.raises(PayloadError):
        parse_alertmanager(body)


@pytest.mark.parametrize("body", [[], {"foo": 1}, {"alert_id": "1"}, {"transition": "Triggered"}])
def test_it_refuses_payloads_that_are_not_datadog_shaped(body):
    with pytest.raises(PayloadError):
        parse_datadog(body)


# --- Alertmanager endpoint -----------------------------------------------------------------


def test_a_firing_group_is_one_record_and_one_text_per_responder(client, services):
    response = post_am(client, payload("alertmanager_firing"))
    assert response.status_code == 200
    assert response.json["status"] == "ok" and response.json["new"] == 3
    [alert] = stored_alerts(services)
    assert (alert.source, alert.status, alert.size, alert.name) == ("alertmanager", "firing", 3, "HighCPU")
    sent = texts(services)
    assert sorted(t.to_number for t in sent) == sorted([ADMIN, RESPONDER])  # viewers are not paged
    assert {t.body for t in sent} == {f"FIRING 3 HighCPU web-1,web-2,web-3 #{alert.id}"}
    assert all(t.kind == "alert" and t.alert_id == alert.id and t.segments == 1 for t in sent)


def test_alert_recipients_replace_the_responders(app, settings):
    app = create_app(with_settings(settings, alert_recipients=("+15555550155",)))
    post_am(app.test_client(), payload("alertmanager_firing"))
    assert [t.to_number for t in texts(app.extensions["operator"])] == ["+15555550155"]
    app.extensions["operator"].close()


def test_a_truncated_group_counts_the_alerts_it_left_out(client, services):
    post_am(client, payload("alertmanager_truncated"))
    assert texts(services)[0].body == "FIRING 3 HighCPU web-1,web-2 +1 #1"


@pytest.mark.parametrize(
    "second", ["alertmanager_firing_ha_peer", "alertmanager_firing", "alertmanager_truncated"]
)
def test_ha_duplicates_and_group_resends_never_text_twice(client, services, second):
    post_am(client, payload("alertmanager_firing"))
    response = post_am(client, payload(second))
    assert response.status_code == 200 and response.json["new"] == 0
    assert len(texts(services)) == 2 and len(stored_alerts(services)) == 1


def test_it_never_dedups_on_summary_text(client, services):
    first = many(1, group_key="a")
    second = copy.deepcopy(first)
    second["groupKey"] = "b"
    second["alerts"][0]["fingerprint"] = "ffff000000000000"
    post_am(client, first)
    post_am(client, second)
    assert len(stored_alerts(services)) == 2 and len(texts(services)) == 4


def test_a_new_alert_joining_the_group_texts_again_unless_acked(client, services):
    first = many(2)
    post_am(client, first)
    grown = many(3)
    post_am(client, grown)
    assert [t.body for t in texts(services)][-1] == "FIRING 3 Flood host-0,host-1,host-2 #1: flood"
    with services.engine.begin() as conn:
        records.set_fields(conn, 1, acked_by=ADMIN, acked_at=db.now())
    post_am(client, many(4))
    assert len(texts(services)) == 4
    assert stored_alerts(services)[0].size == 4


def test_resolution_texts_everyone_paged_after_the_recovery_delay(client, services, settings):
    post_am(client, payload("alertmanager_firing"))
    with services.engine.begin() as conn:
        records.set_fields(conn, 1, opened_at=db.now() - 3600)
    assert escalation.run(services) == 1
    before = db.now()
    post_am(client, payload("alertmanager_resolved"))
    [alert] = stored_alerts(services)
    assert alert.status == "resolved"
    notices = texts(services, "recovery")
    assert sorted(t.to_number for t in notices) == sorted([ADMIN, RESPONDER, ESCALATION])
    assert {t.body for t in notices} == {"RESOLVED after 5s HighCPU #1"}
    assert all(t.not_before >= before + settings.recovery_delay for t in notices)


def refired(starts_at: str = "2026-11-27T04:03:40.000Z") -> dict:
    """The same group firing again: each alert has a new startsAt, so new events."""
    body = payload("alertmanager_firing")
    for alert in body["alerts"]:
        alert["startsAt"] = starts_at
    return body


def test_a_group_firing_again_before_its_resolved_went_out_is_the_same_incident(client, services):
    post_am(client, payload("alertmanager_firing"))
    post_am(client, payload("alertmanager_resolved"))
    assert post_am(client, refired()).status_code == 200
    [alert] = stored_alerts(services)
    assert alert.status == "firing" and alert.resolved_at is None
    assert [t.kind for t in texts(services)] == ["alert", "alert", "recovery", "recovery"], "no second page"
    assert {t.status for t in texts(services, "recovery")} == {"dropped"}


def test_a_group_firing_again_after_its_resolved_went_out_is_a_new_page(client, services):
    post_am(client, payload("alertmanager_firing"))
    post_am(client, payload("alertmanager_resolved"))
    with services.engine.begin() as conn:
        conn.execute(outbox.update().where(outbox.c.kind == "recovery").values(status="sent"))
        records.set_fields(conn, 1, resolved_at=db.now() - 3600)
    post_am(client, refired())
    assert [a.status for a in stored_alerts(services)] == ["resolved", "firing"]
    assert texts(services)[-1].body == "FIRING 3 HighCPU web-1,web-2,web-3 #2"


def test_a_group_resolved_by_sms_pages_again_when_it_fires_anew(client, services):
    post_am(client, payload("alertmanager_firing"))
    with services.engine.begin() as conn:
        records.close(conn, 1, by=RESPONDER)
    post_am(client, payload("alertmanager_firing"))  # a re-send of what was closed: a duplicate
    assert len(stored_alerts(services)) == 1
    post_am(client, refired())
    assert [a.status for a in stored_alerts(services)] == ["resolved", "firing"]
    assert texts(services)[-1].body == "FIRING 3 HighCPU web-1,web-2,web-3 #2"


def test_a_resolved_notification_for_an_unknown_group_texts_nobody(client, services):
    assert post_am(client, payload("alertmanager_resolved")).status_code == 200
    assert texts(services) == [] and stored_alerts(services) == []


def test_the_prometheus_path_is_the_same_handler(client, services):
    assert post_am(client, payload("alertmanager_firing"), path="/webhook/prometheus").status_code == 200
    assert len(stored_alerts(services)) == 1


def test_a_batch_of_a_thousand_alerts_is_stored_with_one_text_per_recipient(client, services):
    response = post_am(client, many(1000))
    assert response.status_code == 200 and response.json["new"] == 1000
    [alert] = stored_alerts(services)
    assert alert.size == 1000
    with services.engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(records.alert_events)) == 1000
    sent = texts(services)
    assert len(sent) == 2 and sent[0].segments == 1
    assert sent[0].body.startswith("FIRING 1000 Flood host-0,") and "#1" in sent[0].body


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Bearer {AM_TOKEN}x"},
        {"Authorization": AM_TOKEN},
        {"Authorization": "Basic " + base64.b64encode(f"user:{AM_TOKEN}".encode()).decode()},
    ],
)
def test_it_refuses_alertmanager_calls_without_the_token(client, services, headers):
    response = client.post("/webhook/alertmanager", json=payload("alertmanager_firing"), headers=headers)
    assert response.status_code == 401
    assert response.json["status"] == "error"
    assert stored_alerts(services) == []


def test_basic_auth_works_when_a_user_and_password_are_set(settings):
    app = create_app(
        with_settings(settings, alertmanager_token="", alertmanager_user="am", alertmanager_password="pw")
    )
    client = app.test_client()
    good = "Basic " + base64.b64encode(b"am:pw").decode()
    bad = "Basic " + base64.b64encode(b"am:nope").decode()
    body = payload("alertmanager_firing")
    assert client.post("/webhook/alertmanager", json=body, headers={"Authorization": bad}).status_code == 401
    assert client.post("/webhook/alertmanager", json=body, headers={"Authorization": good}).status_code == 200
    app.extensions["operator"].close()


def test_the_endpoints_are_off_without_a_token(settings):
    app = create_app(with_settings(settings, alertmanager_token="", datadog_token=""))
    client = app.test_client()
    assert post_am(client, payload("alertmanager_firing")).status_code == 404
    assert post_dd(client, payload("datadog_custom_triggered")).status_code == 404
    app.extensions["operator"].close()


@pytest.mark.parametrize(
    "body, message",
    [
        ("{not json", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        ("[]", "JSON object"),
        ('{"alerts": "x"}', "'alerts' must be a list"),
    ],
)
def test_malformed_bodies_get_a_400_with_a_json_error(client, services, body, message):
    response = post_am(client, body)
    assert response.status_code == 400
    assert response.json["status"] == "error" and message in response.json["message"]


def test_a_body_over_one_mebibyte_gets_a_413_json_error(client):
    body = json.dumps({"alerts": [], "padding": "x" * (1024 * 1024)})
    response = post_am(client, body)
    assert response.status_code == 413
    assert response.json == {"status": "error", "message": "body larger than 1 MiB"}


def test_a_store_failure_answers_503_so_the_sender_retries(client, services):
    with services.engine.begin() as conn:
        conn.execute(text("DROP TABLE alert_events"))
    response = post_am(client, payload("alertmanager_firing"))
    assert response.status_code == 503 and response.json["status"] == "error"
    assert texts(services) == [] and stored_alerts(services) == []  # nothing half-stored


def test_a_database_that_went_away_answers_503(settings):
    url, drop = fresh_postgres_database()
    app = create_app(with_settings(settings, database_url=url))
    drop()
    response = post_am(app.test_client(), payload("alertmanager_firing"))
    assert response.status_code == 503
    assert response.json == {"status": "error", "message": "store unavailable; retry later"}
    app.extensions["operator"].close()


def test_an_ha_pair_delivering_at_once_texts_once_on_postgresql(settings):
    url, drop = fresh_postgres_database()
    app = create_app(with_settings(settings, database_url=url))
    body = payload("alertmanager_firing")
    statuses = []

    def deliver() -> None:
        statuses.append(post_am(app.test_client(), body).status_code)

    threads = [threading.Thread(target=deliver) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    services = app.extensions["operator"]
    try:
        assert statuses == [200] * 6
        assert len(stored_alerts(services)) == 1 and len(texts(services)) == 2
    finally:
        services.close()
        drop()


# --- Datadog endpoint ----------------------------------------------------------------------


def test_a_datadog_incident_pages_on_warn_and_trigger_then_recovers(client, services):
    for name in ("datadog_custom_warn", "datadog_custom_triggered", "datadog_custom_recovered"):
        assert post_dd(client, payload(name)).status_code == 200
    bodies = [t.body for t in texts(services) if t.to_number == ADMIN]
    assert bodies[0].startswith("WARN Payment API error rate high web-1 #1")
    assert bodies[1].startswith("FIRING Payment API error rate high web-1 #1")
    assert bodies[2] == "RESOLVED after 28m Payment API error rate high #1"
    assert stored_alerts(services)[0].status == "resolved"


def test_a_datadog_retry_and_renotify_do_not_text_again(client, services):
    post_dd(client, payload("datadog_custom_triggered"))
    post_dd(client, payload("datadog_custom_triggered"))
    renotify = payload("datadog_custom_triggered") | {"transition": "Renotify"}
    assert post_dd(client, renotify).status_code == 200
    assert len(texts(services)) == 2


def test_a_renotify_for_an_alert_we_missed_opens_it(client, services):
    post_dd(client, payload("datadog_custom_triggered") | {"transition": "Renotify"})
    assert [t.body.split(" #")[0] for t in texts(services)][0] == "FIRING Payment API error rate high web-1"


def test_datadogs_default_payload_is_tolerated(client, services):
    post_dd(client, payload("datadog_default_triggered"))
    post_dd(client, payload("datadog_default_no_data"))
    post_dd(client, payload("datadog_default_recovered"))
    disk, heartbeat = stored_alerts(services)
    assert (disk.name, disk.status, heartbeat.status, heartbeat.transition) == (
        "Disk almost full",
        "resolved",
        "firing",
        "NO DATA",
    )
    assert [t.body for t in texts(services, "recovery")][0] == "RESOLVED after 30m Disk almost full #1"


def test_a_datadog_transition_that_is_not_an_alert_state_is_acknowledged_and_ignored(client, services):
    response = post_dd(client, payload("datadog_custom_triggered") | {"transition": "Muted"})
    assert response.status_code == 200 and response.json["received"] == 0
    assert stored_alerts(services) == []


@pytest.mark.parametrize("token", ["", "wrong", AM_TOKEN])
def test_it_refuses_datadog_calls_without_its_token(client, services, token):
    assert post_dd(client, payload("datadog_custom_triggered"), token=token).status_code == 401
    assert stored_alerts(services) == []


def test_viewers_are_never_paged(client, services):
    post_dd(client, payload("datadog_custom_triggered"))
    assert VIEWER not in {t.to_number for t in texts(services)}


def test_sqlite_and_postgresql_store_the_same_events(settings):
    url, drop = fresh_postgres_database()
    app = create_app(with_settings(settings, database_url=url))
    client = app.test_client()
    post_am(client, payload("alertmanager_firing"))
    post_am(client, payload("alertmanager_firing_ha_peer"))
    post_am(client, payload("alertmanager_resolved"))
    services = app.extensions["operator"]
    try:
        assert [t.body for t in texts(services) if t.to_number == ADMIN] == [
            "FIRING 3 HighCPU web-1,web-2,web-3 #1",
            "RESOLVED after 5s HighCPU #1",
        ]
        engine = create_engine(url)
        with engine.connect() as conn:
            assert conn.scalar(text("SELECT count(*) FROM alert_events")) == 6
        engine.dispose()
    finally:
        services.close()
        drop()


def test_hostile_values_are_stored_trimmed_on_postgresql_not_refused_forever(settings):
    url, drop = fresh_postgres_database()
    app = create_app(with_settings(settings, database_url=url))
    body = many(2)
    body["commonLabels"] = {"alertname": "A\x00" + "x" * 5000, "severity": "s" * 900}
    for alert in body["alerts"]:
        alert["labels"] |= {"alertname": "A\x00" + "x" * 5000, "severity": "s" * 900, "k" * 300: "v\x00"}
        alert["fingerprint"] += "\x00" + "f" * 400
        alert["startsAt"] = 12345
    services = app.extensions["operator"]
    try:
        response = post_am(app.test_client(), body)
        assert response.status_code == 200, response.json
        [alert] = stored_alerts(services)
        assert alert.name.startswith("Ax") and len(alert.name) <= 255 and len(alert.severity) <= 32
        assert all(t.segments == 1 and "... host-0,host-1 #1: flood" in t.body for t in texts(services))
    finally:
        services.close()
        drop()


@pytest.mark.parametrize(
    "method, path, status",
    [
        ("get", "/webhook/alertmanager", 405),
        ("put", "/webhook/datadog", 405),
        ("post", "/webhook/nagios", 404),
    ],
)
def test_wrong_methods_and_paths_get_json_errors(client, method, path, status):
    response = getattr(client, method)(path)
    assert response.status_code == status and response.json["status"] == "error"


def test_other_paths_keep_their_own_errors(client):
    assert client.get("/nowhere").status_code == 404
    assert client.get("/sms").status_code == 405
