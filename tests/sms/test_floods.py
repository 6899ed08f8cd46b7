"""Floods: refused requests cost a counter, not a row or a log line each; /metrics is not public."""

from __future__ import annotations

import logging

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import event, func, select

from inbound import audit
from outbox import queue
from tests.support.apps import app_with, with_settings
from tests.support.phones import ADMIN, Phone, sign
from tests.support.servers import free_port

METRICS_TOKEN = "metrics-token-5f4e3d2c1b0a"


def sample(client, name: str, **kwargs) -> float:
    body = client.get("/metrics", **kwargs).get_data(as_text=True)
    for family in text_string_to_metric_families(body):
        for s in family.samples:
            if s.name == name:
                return s.value
    return 0.0


def stored(app) -> int:
    with app.extensions["operator"].engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(audit.messages)).scalar_one()


def test_a_flood_of_unsigned_requests_stores_nothing_and_logs_one_line(app, client, caplog):
    before = sample(client, "operator_signature_rejections_total")
    caplog.set_level(logging.WARNING, logger="security")
    for i in range(300):
        form = {"From": f"+1555555{i:04d}", "Body": "help", "MessageSid": "SM" + "0" * 32}
        assert client.post("/sms", data=form, headers={"X-Twilio-Signature": "forged"}).status_code == 403
    assert stored(app) == 0
    assert sample(client, "operator_signature_rejections_total") == before + 300
    lines = [r for r in caplog.records if r.name == "security"]
    assert len(lines) == 1 and "refused /sms" in lines[0].getMessage()
    # A genuine text still gets through, and is the only row.
    assert Phone(client).text("help").startswith("Commands:")
    assert stored(app) == 1


def test_refused_status_reports_and_malformed_forms_are_counted_too(app, client):
    before = sample(client, "operator_malformed_requests_total")
    params = {"MessageSid": "SM1", "MessageStatus": "sent"}
    headers = {"X-Twilio-Signature": sign("http://localhost/sms/status", params)}
    assert client.post("/sms/status", data=params, headers=headers).status_code == 400
    assert sample(client, "operator_malformed_requests_total") == before + 1


@pytest.mark.parametrize(
    "environ, headers",
    [
        ({"REMOTE_ADDR": "203.0.113.9"}, {}),
        ({"REMOTE_ADDR": "10.0.0.2"}, {}),
        # A reverse proxy on this host forwards everyone from 127.0.0.1.
        ({"REMOTE_ADDR": "127.0.0.1"}, {"X-Forwarded-For": "203.0.113.9"}),
        ({"REMOTE_ADDR": "127.0.0.1"}, {"Forwarded": "for=203.0.113.9"}),
        ({"REMOTE_ADDR": "127.0.0.1"}, {"X-Real-IP": "203.0.113.9"}),
        ({"REMOTE_ADDR": "203.0.113.9"}, {"Authorization": "Bearer wrong-token"}),
    ],
    ids=["public", "private-network", "proxied-xff", "proxied-forwarded", "proxied-real-ip", "wrong-token"],
)
def test_metrics_are_refused_to_anyone_but_this_host_or_the_token(settings, environ, headers):
    with app_with(with_settings(settings, metrics_token=METRICS_TOKEN)) as app:
        response = app.test_client().get("/metrics", environ_base=environ, headers=headers)
        assert response.status_code == 403
        assert response.get_json()["status"] == "error"
        assert b"operator_" not in response.data


def test_metrics_are_served_to_this_host_and_to_a_scraper_with_the_token(settings):
    with app_with(with_settings(settings, metrics_token=METRICS_TOKEN)) as app:
        client = app.test_client()
        assert client.get("/metrics", environ_base={"REMOTE_ADDR": "127.0.0.1"}).status_code == 200
        assert client.get("/metrics", environ_base={"REMOTE_ADDR": "::1"}).status_code == 200
        remote = client.get(
            "/metrics",
            environ_base={"REMOTE_ADDR": "203.0.113.9"},
            headers={"Authorization": f"Bearer {METRICS_TOKEN}"},
        )
        assert remote.status_code == 200 and b"operator_outbox_depth" in remote.data


def test_without_a_token_a_remote_scraper_is_refused_even_with_a_bearer_header(client):
    response = client.get(
        "/metrics", environ_base={"REMOTE_ADDR": "203.0.113.9"}, headers={"Authorization": "Bearer "}
    )
    assert response.status_code == 403


def statements_during(engine, action) -> int:
    count = 0

    def counted(*_args):
        nonlocal count
        count += 1

    event.listen(engine, "before_cursor_execute", counted)
    try:
        action()
    finally:
        event.remove(engine, "before_cursor_execute", counted)
    return count


def enqueue(services, n: int = 1) -> None:
    with services.engine.begin() as conn:
        for _ in range(n):
            queue.enqueue(conn, ADMIN, "waiting", "alert", services.settings)


def test_scrapes_within_the_cache_time_do_not_touch_the_store(client, services):
    enqueue(services)
    assert sample(client, "operator_outbox_depth") == 1
    enqueue(services, 2)
    engine = services.engine
    assert statements_during(engine, lambda: [client.get("/metrics") for _ in range(20)]) == 0
    # The cached readings say how old they are.
    assert sample(client, "operator_outbox_depth") == 1
    assert sample(client, "operator_store_metrics_age_seconds") >= 0


def test_with_the_cache_off_every_scrape_reads_the_store(settings):
    with app_with(with_settings(settings, metrics_cache_ttl=0)) as app:
        client, services = app.test_client(), app.extensions["operator"]
        enqueue(services)
        assert sample(client, "operator_outbox_depth") == 1
        enqueue(services, 2)
        assert sample(client, "operator_outbox_depth") == 3


def test_metrics_still_answer_while_the_store_is_down(settings):
    closed = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/operator"
    with app_with(with_settings(settings, database_url=closed)) as app:
        response = app.test_client().get("/metrics")
        assert response.status_code == 200
        assert b"operator_reply_latency_seconds" in response.data
        assert b"operator_outbox_depth" not in response.data
