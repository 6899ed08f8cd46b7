"""A team's escalation listens to its calls: pressing 1 or nobody reached moves on now; 4 or 6 stops it."""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime, timedelta

import pytest
from werkzeug.serving import make_server

from app import create_app
from core import db
from incidents import records
from oncall import escalation
from outbox import backends, calls
from outbox.sender import Sender
from rate_limiter import RateLimiter
from tests.support.alerts import WEBHOOK_TOKEN, fire
from tests.support.apps import with_settings
from tests.support.calls import mark_placed, voice
from tests.support.fakes.twilio_api import FakeTwilio
from tests.support.fakes.twilio_voice import CallPlayer
from tests.support.oncall import ALICE, BOB, payments_and_infra, texts
from tests.support.phones import Phone
from tests.support.servers import free_port

# The page, a call to the on-call after 5 minutes, a text to who is next after 30.
POLICY = [
    {"after": 0, "notify": "oncall"},
    {"after": "5m", "notify": "oncall", "via": "call"},
    {"after": "30m", "notify": "next"},
]
SID = "CA" + "c" * 32


def an_hour_ago() -> str:
    return (datetime.now(UTC) - timedelta(hours=1)).replace(microsecond=0).isoformat()


@pytest.fixture
def app(settings):
    file = payments_and_infra(start=an_hour_ago(), escalation=POLICY)
    app = create_app(with_settings(settings, file=file, alertmanager_token=WEBHOOK_TOKEN))
    yield app
    app.extensions["operator"].close()


def called_alice(client, services) -> tuple[int, int]:
    """An alert opened 6 minutes ago whose call step ran: (alert id, the call's id)."""
    alert_id = fire(client, "CardDeclines", labels={"team": "payments"})
    with services.engine.begin() as conn:
        records.set_fields(conn, alert_id, opened_at=db.now() - 6 * 60)
    assert escalation.run(services) == 1
    with services.engine.begin() as conn:
        [call] = calls.about(conn, alert_id)
    assert call.to_number == ALICE
    return alert_id, call.id


def escalated_to(services) -> list[str]:
    return [to for to, _, kind in texts(services) if kind == "escalation"]


def answer(client, call_id, digit=None, answered_by="human"):
    voice(client, calls.ANSWER_PATH, call_id, ALICE, SID, AnsweredBy=answered_by)
    if digit is not None:
        voice(client, calls.GATHER_PATH, call_id, ALICE, SID, Digits=digit)


def placed(services, call_id):
    with services.engine.begin() as conn:
        mark_placed(conn, call_id, SID)


@pytest.mark.parametrize(
    "how",
    [
        lambda c, i: answer(c, i, "1"),
        lambda c, i: voice(c, calls.STATUS_PATH, i, ALICE, SID, CallStatus="no-answer"),
        lambda c, i: voice(c, calls.STATUS_PATH, i, ALICE, SID, CallStatus="busy"),
        lambda c, i: answer(c, i, answered_by="machine_start"),
    ],
    ids=["pressed 1", "no answer", "busy", "a machine"],
)
def test_pressing_1_or_nobody_reached_runs_the_next_step_at_once(client, services, how):
    alert_id, call_id = called_alice(client, services)
    placed(services, call_id)
    assert escalation.run(services) == 0  # the call is still ringing: step 3 waits for its time
    how(client, call_id)
    assert escalation.run(services) == 1  # 7 minutes in, not 30
    assert escalated_to(services) == [BOB]
    assert escalation.run(services, now=db.now() + 30 * 60) == 0  # and not a second time at its time
    with services.engine.connect() as conn:
        assert records.notes(conn, alert_id, f"escalation:{alert_id}:0:3") == [f"escalation:{alert_id}:0:3"]


def test_a_person_who_answered_and_hung_up_leaves_the_next_step_to_its_time(client, services):
    _, call_id = called_alice(client, services)
    placed(services, call_id)
    answer(client, call_id)
    voice(client, calls.STATUS_PATH, call_id, ALICE, SID, CallStatus="completed", AnsweredBy="human")
    assert escalation.run(services) == 0 and escalated_to(services) == []
    assert escalation.run(services, now=db.now() + 25 * 60) == 1
    assert escalated_to(services) == [BOB]


def test_a_call_never_placed_counts_as_not_reached(client, services):
    alert_id, call_id = called_alice(client, services)
    with services.engine.begin() as conn:
        calls.finish(conn, call_id, calls.Outcome.NOT_REACHED, "not placed: storm limit")
    assert escalation.run(services) == 1 and escalated_to(services) == [BOB]


@pytest.fixture
def live(settings):
    """(services, fake Twilio) with the app on a real socket that PUBLIC_URL names, as Twilio reaches it."""
    fake = FakeTwilio(settings.twilio_account_sid, settings.twilio_auth_token, hang_seconds=5).start()
    port = free_port()
    file = payments_and_infra(start=an_hour_ago(), escalation=POLICY)
    app = create_app(with_settings(settings, file=file, alertmanager_token=WEBHOOK_TOKEN, sms_backend="twilio",
                                   twilio_api_url=fake.url, call_rate=1000.0,
                                   public_url=f"http://127.0.0.1:{port}"))  # fmt: skip
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield app, fake
    finally:
        server.shutdown()
        thread.join(5)
        app.extensions["operator"].close()
        fake.stop()


def send_all(services) -> None:
    """The worker's sender, until the outbox is empty: the page texts, then the call."""
    storm = RateLimiter(services.limiter.storage, "100 per minute", "alerts")
    sender = Sender(services.engine, services.settings, backends.make_backend(services.settings, 1), storm,
                    records, "w1")  # fmt: skip
    while sender.step():
        pass


@pytest.mark.parametrize("digit, status", [("4", "firing"), ("6", "resolved")])
def test_a_keypress_ack_or_resolve_on_twilios_signed_callbacks_stops_the_escalation(live, digit, status):
    app, fake = live
    services = app.extensions["operator"]
    alert_id, call_id = called_alice(app.test_client(), services)
    send_all(services)
    [placed] = fake.placed()
    player = CallPlayer(placed, services.settings.twilio_auth_token)
    assert player.answer().status_code == 200
    assert player.press(digit).status_code == 200
    assert player.hang_up().status_code in (200, 204)
    with services.engine.connect() as conn:
        assert calls.outcome(conn, call_id).taken
        assert records.get(conn, alert_id).status == status
    assert escalation.run(services, now=db.now() + 60 * 60) == 0
    assert escalated_to(services) == []


def test_nobody_answering_on_twilios_signed_callbacks_runs_the_next_step_at_once(live):
    app, fake = live
    services = app.extensions["operator"]
    called_alice(app.test_client(), services)
    send_all(services)
    [placed] = fake.placed()
    CallPlayer(placed, services.settings.twilio_auth_token).unanswered("no-answer")
    assert escalation.run(services) == 1 and escalated_to(services) == [BOB]


def test_alerts_id_tells_briefly_who_each_step_called_or_texted_and_how_the_call_went(client, services):
    alert_id, call_id = called_alice(client, services)
    placed(services, call_id)
    voice(client, calls.STATUS_PATH, call_id, ALICE, SID, CallStatus="busy")
    escalation.run(services)
    reply = Phone(client, BOB).text(f"alerts {alert_id}")
    said = re.sub(r"\d+s ago", "just now", reply)
    # The team names both (tests.support.oncall): steps say who as the team calls them.
    expected = "escalated to Alice by call just now, not reached; escalated to Bob by text just now"
    assert expected in said
    assert ALICE not in reply
