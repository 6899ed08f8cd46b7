"""app.py: the routes around the SMS flow: /livez, /metrics, store outages and internal errors."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, text

from inbound.routes import STORE_DOWN
from tests.support.apps import app_with, with_settings
from tests.support.phones import STRANGER, Phone, reply_text
from tests.support.servers import POSTGRES_ADMIN_URL, free_port, fresh_postgres_database


def sample(client, name: str, **labels: str) -> float:
    body = client.get("/metrics").get_data(as_text=True)
    for family in text_string_to_metric_families(body):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return 0.0


def test_livez_says_ok_when_the_store_answers(client):
    response = client.get("/livez")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "store": "ok"}


def test_an_unreachable_store_gives_503_and_a_clear_text_not_a_crash(settings):
    closed = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/operator"
    with app_with(with_settings(settings, database_url=closed)) as app:
        client = app.test_client()
        for path in ("/healthz", "/livez"):
            response = client.get(path)
            assert response.status_code == 503
            assert response.get_json() == {"status": "error", "store": "unreachable"}
        phone = Phone(client)
        assert phone.text("status") == STORE_DOWN
        # Strangers learn nothing, and a bad signature is still a 403.
        assert phone.text("status", number=STRANGER) is None
        assert (
            client.post("/sms", data={"From": STRANGER}, headers={"X-Twilio-Signature": "x"}).status_code
            == 403
        )


def test_the_tables_appear_once_a_missing_database_comes_up(settings):
    url, drop = fresh_postgres_database()
    drop()
    with app_with(with_settings(settings, database_url=url)) as app:
        client = app.test_client()
        assert client.get("/livez").status_code == 503
        name = url.rsplit("/", 1)[1]
        admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            assert client.get("/livez").status_code == 200
            assert Phone(client).text("help").startswith("Commands:")
        finally:
            app.extensions["operator"].engine.dispose()
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()


def test_an_internal_error_still_answers_twiml_to_an_authorized_phone_only(settings):
    url, drop = fresh_postgres_database()
    try:
        with app_with(with_settings(settings, database_url=url)) as app:
            with app.extensions["operator"].engine.begin() as conn:
                # A broken schema: not an outage, a bug Operator must survive without a stack trace.
                conn.execute(text("DROP TABLE messages"))
            client = app.test_client()
            response = Phone(client).post("help")
            assert response.status_code == 200 and response.mimetype == "application/xml"
            assert reply_text(response.data).startswith("Operator hit an internal error (ref ")
            stranger = Phone(client).post("help", number=STRANGER)
            assert stranger.status_code == 500
            assert list(ET.fromstring(stranger.data)) == [] and b"Traceback" not in stranger.data
    finally:
        drop()


def test_metrics_count_commands_rejections_and_limits(settings):
    with app_with(with_settings(settings, rate_limit="1 per minute")) as app:
        client = app.test_client()
        before = {
            "help": sample(client, "operator_commands_total", command="help", outcome="ok"),
            "rejected": sample(client, "operator_signature_rejections_total"),
            "limited": sample(client, "operator_rate_limited_total"),
            "latency": sample(client, "operator_reply_latency_seconds_count"),
        }
        phone = Phone(client)
        phone.text("help")
        phone.text("help")
        client.post("/sms", data={"Body": "help"}, headers={"X-Twilio-Signature": "forged"})
        assert sample(client, "operator_commands_total", command="help", outcome="ok") == before["help"] + 1
        assert sample(client, "operator_signature_rejections_total") == before["rejected"] + 1
        assert sample(client, "operator_rate_limited_total") == before["limited"] + 1
        assert sample(client, "operator_reply_latency_seconds_count") == before["latency"] + 2


def test_metrics_are_served_in_the_prometheus_text_format(client):
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain")
    assert b"operator_reply_latency_seconds_bucket" in response.data


@pytest.mark.parametrize(
    "step",
    [
        "storing the text",
        "counting it against the limit",
        "recording the answer",
        "storing text and answer at once",
    ],
)
def test_a_store_connection_that_dies_while_a_text_is_handled_gets_the_store_down_reply(settings, step):
    """The server ends the session in the middle of handling a text (a restart, a failover): the
    phone is told the store is unreachable, never 'internal error', and the next text runs.
    (status runs a command between storing the text and recording its answer; help does not.)"""
    url, drop = fresh_postgres_database()
    table, event, body = {"storing the text": ("messages", "INSERT", "status"),
                          "counting it against the limit": ("rate_limits", "INSERT", "status"),
                          "recording the answer": ("messages", "UPDATE", "status"),
                          "storing text and answer at once": ("messages", "INSERT", "help")}[step]  # fmt: skip
    try:
        with app_with(with_settings(settings, database_url=url)) as app:
            phone = Phone(app.test_client())
            answer = phone.text(body)
            assert answer != STORE_DOWN
            engine = app.extensions["operator"].engine
            with engine.begin() as conn:
                conn.execute(text(DIE))
                conn.execute(
                    text(f"CREATE TRIGGER die BEFORE {event} ON {table} FOR EACH ROW EXECUTE FUNCTION die()")
                )
            assert phone.text(body) == STORE_DOWN
            with engine.begin() as conn:
                conn.execute(text(f"DROP TRIGGER die ON {table}"))
            assert phone.text(body) == answer
    finally:
        drop()


# The server ends the very session that runs the statement, as a restart ends every session.
DIE = """CREATE FUNCTION die() RETURNS trigger AS $$
BEGIN PERFORM pg_terminate_backend(pg_backend_pid()); RETURN NEW; END $$ LANGUAGE plpgsql"""
