"""Voice calls about alerts: what the callee hears, what each key does, and what escalation learns."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from sqlalchemy import select

from config import ConfigError, Settings
from core import db
from incidents import escalation, records
from outbox import backends, calls, queue
from outbox.calls import Outcome
from outbox.sender import CALL_PACING_KEY, Sender, pacing
from rate_limiter import RateLimiter
from services import build_services
from tests.support.apps import with_settings
from tests.support.fakes.twilio_api import FakeTwilio
from tests.support.phones import ADMIN, RESPONDER, STRANGER, TOKEN, VIEWER, sign
from voice import routes

SID = "CA" + "a" * 32


def open_alert(services, name="HighCPU", summary="CPU above 90% on web-1") -> int:
    with services.engine.begin() as conn:
        alert, _ = records.fire(conn, "alertmanager", name, name, summary=summary)
        return alert.id


def placed_call(services, to=RESPONDER, alert_id=None, sid=SID) -> tuple[int, int]:
    """A call the worker placed (Twilio accepted it with `sid`); returns (call id, alert id)."""
    alert_id = alert_id or open_alert(services)
    with services.engine.begin() as conn:
        call_id = calls.enqueue_call(conn, to, alert_id, services.settings)
        conn.execute(
            queue.outbox.update().where(queue.outbox.c.id == call_id).values(status="sent", provider_sid=sid)
        )
        calls.placed(conn, call_id, sid, "queued")
    return call_id, alert_id


class Twilio:
    """Posts Voice webhooks to the test client, signed as Twilio signs them."""

    def __init__(self, client, to=RESPONDER, sid=SID):
        self.client, self.to, self.sid = client, to, sid

    def post(self, path, call_id, token=TOKEN, query=None, **fields):
        params = {
            "CallSid": self.sid,
            "AccountSid": "AC" + "1" * 32,
            "From": "+15005550006",
            "To": self.to,
            "CallStatus": "in-progress",
            "Direction": "outbound-api",
            "ApiVersion": "2010-04-01",
            **fields,
        }
        query = query if query is not None else f"call={call_id}"
        target = f"{path}?{query}" if query else path
        headers = {"X-Twilio-Signature": sign("http://localhost" + target, params, token)}
        return self.client.post(target, data=params, headers=headers)

    def answer(self, call_id, **fields):
        return self.post(calls.ANSWER_PATH, call_id, **{"AnsweredBy": "human", **fields})

    def press(self, call_id, digit):
        return self.post(calls.GATHER_PATH, call_id, Digits=digit)

    def status(self, call_id, status, **fields):
        return self.post(calls.STATUS_PATH, call_id, CallStatus=status, **fields)


def said(response) -> list[str]:
    return [s.text or "" for s in ET.fromstring(response.data).iter("Say")]


def outcome(services, call_id) -> Outcome:
    with services.engine.connect() as conn:
        return calls.outcome(conn, call_id)


def alert(services, alert_id):
    with services.engine.connect() as conn:
        return records.get(conn, alert_id)


def notes(services, alert_id):
    with services.engine.connect() as conn:
        return routes.notes(conn, alert_id)


def test_a_person_who_answers_hears_the_alert_and_the_keys(client, services):
    call_id, alert_id = placed_call(services)
    response = Twilio(client).answer(call_id)
    assert response.status_code == 200 and response.mimetype == "application/xml"
    gather = ET.fromstring(response.data).find("Gather")
    assert gather.attrib == {
        "action": f"http://localhost/voice/gather?call={call_id}",
        "method": "POST",
        "numDigits": "1",
        "timeout": "8",
    }
    assert said(response)[:2] == [
        f"Operator alert {alert_id}. HighCPU. CPU above 90% on web-1.",
        "Press 4 to acknowledge, 6 to resolve, 1 to escalate, star to repeat.",
    ]
    assert outcome(services, call_id) is Outcome.PENDING


def test_pressing_4_acks_the_alert_as_the_called_number(client, services):
    call_id, alert_id = placed_call(services)
    twilio = Twilio(client)
    twilio.answer(call_id)
    assert said(twilio.press(call_id, "4")) == [f"Alert {alert_id} acknowledged. Goodbye."]
    assert alert(services, alert_id).acked_by == RESPONDER
    assert outcome(services, call_id) is Outcome.ACKED and outcome(services, call_id).taken
    assert notes(services, alert_id) == [f"voice:call:{call_id}:acked"]


def test_pressing_6_resolves_and_tells_the_others_paged(client, services):
    alert_id = open_alert(services)
    with services.engine.begin() as conn:
        queue.enqueue(conn, ADMIN, "FIRING HighCPU", queue.Kind.ALERT, services.settings, alert_id=alert_id)
    call_id, _ = placed_call(services, alert_id=alert_id)
    twilio = Twilio(client)
    twilio.answer(call_id)
    assert said(twilio.press(call_id, "6")) == [f"Alert {alert_id} resolved. Goodbye."]
    closed = alert(services, alert_id)
    assert closed.status == "resolved" and closed.resolved_by == RESPONDER
    with services.engine.connect() as conn:
        told = conn.execute(select(queue.outbox).where(queue.outbox.c.kind == "recovery")).all()
    assert [t.to_number for t in told] == [ADMIN] and told[0].body.startswith("RESOLVED by +1555***0101")
    assert outcome(services, call_id) is Outcome.RESOLVED


def test_pressing_1_asks_for_the_next_step_and_leaves_the_alert_alone(client, services):
    call_id, alert_id = placed_call(services)
    twilio = Twilio(client)
    twilio.answer(call_id)
    assert said(twilio.press(call_id, "1")) == ["Escalating to the next person. Goodbye."]
    assert alert(services, alert_id).acked_at is None
    assert outcome(services, call_id) is Outcome.ESCALATE and not outcome(services, call_id).taken
    assert notes(services, alert_id) == [f"voice:call:{call_id}:escalate"]


def test_star_repeats_the_alert_and_another_key_does_nothing(client, services):
    call_id, alert_id = placed_call(services)
    twilio = Twilio(client)
    first = said(twilio.answer(call_id))
    assert said(twilio.press(call_id, "*")) == first
    assert said(twilio.press(call_id, "9")) == ["That key does nothing.", *first]
    assert outcome(services, call_id) is Outcome.PENDING and alert(services, alert_id).acked_at is None


@pytest.mark.parametrize("number", [VIEWER, STRANGER])
def test_only_a_responder_can_ack_or_resolve_by_keypress(client, services, number):
    call_id, alert_id = placed_call(services, to=number)
    twilio = Twilio(client, to=number)
    twilio.answer(call_id)
    for digit in "46":
        assert said(twilio.press(call_id, digit)) == [
            "This number may not acknowledge or resolve alerts. Goodbye."
        ]
    assert alert(services, alert_id).acked_at is None and alert(services, alert_id).status == "firing"
    assert outcome(services, call_id) is Outcome.PENDING


@pytest.mark.parametrize("answered_by", ["machine_start", "machine_end_beep", "fax"])
def test_a_machine_answering_is_not_reaching_anyone(client, services, answered_by):
    call_id, alert_id = placed_call(services)
    response = Twilio(client).answer(call_id, AnsweredBy=answered_by)
    assert ET.fromstring(response.data).find("Hangup") is not None and said(response) == []
    assert outcome(services, call_id) is Outcome.NOT_REACHED
    assert notes(services, alert_id) == [f"voice:call:{call_id}:not_reached"]


@pytest.mark.parametrize("status", ["no-answer", "busy", "failed", "canceled"])
def test_a_call_nobody_picked_up_is_not_reached(client, services, status):
    call_id, alert_id = placed_call(services)
    twilio = Twilio(client)
    assert twilio.status(call_id, "ringing").status_code == 204
    assert twilio.status(call_id, status, CallDuration="0").status_code == 204
    with services.engine.connect() as conn:
        call = calls.get(conn, call_id)
        told = conn.execute(select(queue.outbox.c.status).where(queue.outbox.c.id == call_id)).scalar()
    assert call.outcome is Outcome.NOT_REACHED and call.reason == status and call.call_status == status
    assert told == "undelivered"  # so no RESOLVED text goes to someone who never heard of it
    assert notes(services, alert_id) == [f"voice:call:{call_id}:not_reached"]


def test_a_person_who_hangs_up_without_a_key_answered_but_did_not_ack(client, services):
    call_id, alert_id = placed_call(services)
    twilio = Twilio(client)
    twilio.answer(call_id)
    twilio.status(call_id, "completed", CallDuration="14")
    assert outcome(services, call_id) is Outcome.ANSWERED and not outcome(services, call_id).taken
    # A late "ringing" changes nothing.
    twilio.status(call_id, "ringing")
    with services.engine.connect() as conn:
        assert calls.get(conn, call_id).call_status == "completed"


def test_a_keypress_replayed_after_the_call_ended_runs_nothing(client, services):
    call_id, alert_id = placed_call(services)
    twilio = Twilio(client)
    twilio.answer(call_id)
    twilio.status(call_id, "completed", CallDuration="14")
    assert said(twilio.press(call_id, "6")) == ["This call is over. Goodbye."]
    assert alert(services, alert_id).status == "firing"


def test_a_second_keypress_after_an_ack_runs_nothing(client, services):
    call_id, alert_id = placed_call(services)
    twilio = Twilio(client)
    twilio.answer(call_id)
    twilio.press(call_id, "4")
    assert said(twilio.press(call_id, "6")) == ["This call is over. Goodbye."]
    assert alert(services, alert_id).status == "firing"


@pytest.mark.parametrize("path", [calls.ANSWER_PATH, calls.GATHER_PATH, calls.STATUS_PATH])
def test_a_forged_voice_callback_gets_403_and_changes_nothing(client, services, path):
    call_id, alert_id = placed_call(services)
    response = Twilio(client).post(path, call_id, token="not-the-token", Digits="6", CallStatus="busy")
    assert response.status_code == 403
    assert alert(services, alert_id).status == "firing" and outcome(services, call_id) is Outcome.PENDING


@pytest.mark.parametrize(
    "query, fields",
    [
        ("call=1", {"CallSid": "CA123"}),
        ("call=1", {"CallSid": "SM" + "a" * 32}),
        ("call=1", {"Body": "ack"}),
        ("call=1", {"Digits": "6; drop table"}),
        ("call=1&call=2", {}),
        ("call=1&x=2", {}),
        ("call=one", {}),
        ("call=9999999999", {}),
        ("", {}),
    ],
)
def test_a_signed_voice_form_twilio_would_not_send_gets_400(client, services, query, fields):
    placed_call(services)
    response = Twilio(client).post(calls.GATHER_PATH, 1, query=query, **{"Digits": "4", **fields})
    assert response.status_code == 400
    assert outcome(services, 1) is Outcome.PENDING and alert(services, 1).acked_at is None


def test_a_callback_for_another_call_sid_changes_nothing(client, services):
    call_id, alert_id = placed_call(services)
    Twilio(client, sid="CA" + "b" * 32).status(call_id, "busy")
    assert outcome(services, call_id) is Outcome.PENDING


OTHER_SID = "CA" + "b" * 32


@pytest.mark.parametrize("digit", ["4", "6", "1"])
def test_a_keypress_carrying_another_calls_sid_acts_on_no_call(client, services, digit):
    """Call A's signed gather URL posted with call B's CallSid: neither alert changes."""
    mine, my_alert = placed_call(services)
    theirs, their_alert = placed_call(services, sid=OTHER_SID)
    Twilio(client).answer(mine)
    Twilio(client, sid=OTHER_SID).answer(theirs)
    response = Twilio(client, sid=OTHER_SID).press(mine, digit)
    assert response.status_code == 200 and "Goodbye" in said(response)[-1]
    for call_id, alert_id in ((mine, my_alert), (theirs, their_alert)):
        assert outcome(services, call_id) is Outcome.PENDING
        assert alert(services, alert_id).acked_at is None and alert(services, alert_id).status == "firing"
    # The call's own keypress still works afterwards.
    assert said(Twilio(client).press(mine, "4")) == [f"Alert {my_alert} acknowledged. Goodbye."]


def test_a_keypress_before_twilio_told_us_the_calls_sid_acts_on_nothing(client, services):
    alert_id = open_alert(services)
    with services.engine.begin() as conn:
        call_id = calls.enqueue_call(conn, RESPONDER, alert_id, services.settings)  # never placed
    Twilio(client).press(call_id, "4")
    assert alert(services, alert_id).acked_at is None and outcome(services, call_id) is Outcome.PENDING


def test_every_documented_voice_parameter_is_accepted(client, services):
    call_id, _ = placed_call(services)
    extra = {name: "x" for name in ("CallerName", "ForwardedFrom", "CallToken", "StirVerstat", "FromCity",
                                     "ToZip", "CalledState", "CallerCountry", "CallbackSource", "Timestamp")}  # fmt: skip
    extra |= {"SequenceNumber": "2", "CallDuration": "31", "SipResponseCode": "200",
              "ParentCallSid": "CA" + "c" * 32, "MachineDetectionDuration": "2100"}  # fmt: skip
    assert Twilio(client).status(call_id, "completed", **extra).status_code == 204


# --- the worker's side: placing the call ---


@pytest.fixture
def fake(settings):
    fake = FakeTwilio(settings.twilio_account_sid, settings.twilio_auth_token, hang_seconds=5).start()
    yield fake
    fake.stop()


@pytest.fixture
def twilio_services(settings, fake):
    changed = with_settings(settings, sms_backend="twilio", twilio_api_url=fake.url, call_rate=1000.0,
                            public_url="https://ops.example.com")  # fmt: skip
    svc = build_services(changed)
    yield svc
    svc.close()


def sender(services) -> Sender:
    storm = RateLimiter(services.limiter.storage, "100 per minute", "alerts")
    return Sender(services.engine, services.settings, backends.make_backend(services.settings, 1), storm,
                  records, "w1")  # fmt: skip


def queue_call(services, to=RESPONDER) -> tuple[int, int]:
    alert_id = open_alert(services)
    with services.engine.begin() as conn:
        return calls.enqueue_call(conn, to, alert_id, services.settings), alert_id


def test_the_worker_places_a_call_with_machine_detection_and_the_signed_urls(twilio_services, fake):
    call_id, _ = queue_call(twilio_services)
    assert sender(twilio_services).step() == 1
    [placed] = fake.placed()
    assert placed.to == RESPONDER and placed.from_ == "+15005550006"
    assert placed.url == f"https://ops.example.com/voice/answer?call={call_id}"
    assert placed.status_callback == f"https://ops.example.com/voice/status?call={call_id}"
    assert placed.events == ["initiated", "ringing", "answered", "completed"]
    assert placed.machine_detection == "Enable" and placed.timeout == "30"
    with twilio_services.engine.connect() as conn:
        call = calls.get(conn, call_id)
    assert call.call_sid == placed.sid and call.outcome is Outcome.PENDING
    assert fake.bodies() == []  # a call, not a text


def test_a_call_twilio_refuses_for_good_is_not_reached(twilio_services, fake):
    fake.mode = "21217"
    call_id, _ = queue_call(twilio_services)
    sender(twilio_services).step()
    with twilio_services.engine.connect() as conn:
        call = calls.get(conn, call_id)
    assert call.outcome is Outcome.NOT_REACHED and "does not appear to be valid" in call.reason


def test_a_call_about_an_alert_acked_meanwhile_is_never_placed(twilio_services, fake):
    call_id, alert_id = queue_call(twilio_services)
    with twilio_services.engine.begin() as conn:
        records.ack(conn, alert_id, ADMIN, db.now())
    sender(twilio_services).step()
    assert fake.placed() == []
    assert outcome(twilio_services, call_id) is Outcome.NOT_REACHED


def test_without_public_url_a_call_fails_plainly(twilio_services, fake):
    svc = build_services(with_settings(twilio_services.settings, public_url=""))
    try:
        call_id, _ = queue_call(svc)
        sender(svc).step()
        with svc.engine.connect() as conn:
            call = calls.get(conn, call_id)
        assert fake.placed() == [] and call.outcome is Outcome.NOT_REACHED and "PUBLIC_URL" in call.reason
    finally:
        svc.close()


def test_calls_are_paced_on_their_own_schedule(twilio_services, fake):
    queue_call(twilio_services)
    sender(twilio_services).step()
    with twilio_services.engine.connect() as conn:
        keys = conn.scalars(select(pacing.c.key)).all()
    assert keys == [CALL_PACING_KEY]


# --- the built-in escalation, by call ---


def test_escalation_via_call_queues_a_call_to_each_escalation_number(settings):
    boss = "+15555550170"
    changed = with_settings(settings, escalate_after=60.0, escalation_numbers=(boss, RESPONDER),
                            escalation_via="call")  # fmt: skip
    svc = build_services(changed)
    try:
        alert_id = open_alert(svc)
        with svc.engine.begin() as conn:
            records.set_fields(conn, alert_id, opened_at=db.now() - 120)
        assert escalation.run(svc) == 1 and escalation.run(svc) == 0
        with svc.engine.connect() as conn:
            placed = calls.about(conn, alert_id)
            texts = conn.execute(select(queue.outbox.c.kind)).scalars().all()
        assert [c.to_number for c in placed] == [boss, RESPONDER] and texts == ["call", "call"]
    finally:
        svc.close()


def test_escalation_via_must_be_sms_or_call():
    with pytest.raises(ConfigError, match="ESCALATION_VIA must be sms or call"):
        Settings.from_env({"TWILIO_AUTH_TOKEN": TOKEN, "ESCALATION_VIA": "pager"})


def test_a_store_failure_mid_call_is_said_plainly_and_acks_nothing(client, services):
    call_id, alert_id = placed_call(services)
    twilio = Twilio(client)
    twilio.answer(call_id)
    with services.engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE alerts RENAME TO alerts_away")
    response = twilio.press(call_id, "4")
    assert response.status_code == 200
    assert said(response) == ["Operator cannot reach its database right now. Nothing was changed. Goodbye."]
    with services.engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE alerts_away RENAME TO alerts")
    assert outcome(services, call_id) is Outcome.PENDING and alert(services, alert_id).acked_at is None


def test_a_console_call_is_logged_and_counts_as_not_reached(services, caplog):
    call_id, _ = queue_call(services)
    with caplog.at_level("INFO", logger="outbox.backends"):
        sender(services).step()
    assert outcome(services, call_id) is Outcome.NOT_REACHED
    assert any("call (console) to +1555***0101" in r.getMessage() for r in caplog.records)
    assert RESPONDER not in caplog.text  # never a full number in the log


def test_calls_obey_the_per_person_storm_limits_like_pages(twilio_services, fake):
    first, _ = queue_call(twilio_services)
    second, _ = queue_call(twilio_services)
    storm = RateLimiter(twilio_services.limiter.storage, "1 per minute", "alerts")
    Sender(twilio_services.engine, twilio_services.settings, backends.make_backend(twilio_services.settings, 1),
           storm, records, "w1").step()  # fmt: skip
    assert len(fake.placed()) == 1
    assert outcome(twilio_services, first) is Outcome.PENDING
    with twilio_services.engine.connect() as conn:
        held = calls.get(conn, second)
    assert held.outcome is Outcome.NOT_REACHED and held.reason == "not placed: folded"


def test_a_machine_answering_before_the_worker_recorded_the_call_still_counts_as_untold(client, services):
    alert_id = open_alert(services)
    with services.engine.begin() as conn:
        call_id = calls.enqueue_call(conn, RESPONDER, alert_id, services.settings)
        conn.execute(queue.outbox.update().where(queue.outbox.c.id == call_id).values(status="sending"))
    Twilio(client).answer(call_id, AnsweredBy="machine_start")  # Twilio is quicker than our commit
    with services.engine.begin() as conn:
        conn.execute(queue.outbox.update().where(queue.outbox.c.id == call_id).values(status="sent"))
        calls.placed(conn, call_id, SID, "queued")
    with services.engine.connect() as conn:
        assert queue.numbers_paged(conn, alert_id) == []
        assert calls.get(conn, call_id).call_sid == SID
