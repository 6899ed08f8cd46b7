"""inbound.py: one verified SMS to its reply: authorization, idempotency, limits, pages, audit."""

from __future__ import annotations

import random
import uuid
import xml.etree.ElementTree as ET

import pytest
from sqlalchemy import select

from config import Settings
from conversation.composer import segments
from inbound import audit
from monitors.system import SystemMonitor
from tests.support.alerts import WEBHOOK_TOKEN, fire
from tests.support.apps import app_with, with_settings
from tests.support.phones import ADMIN, RESPONDER, STRANGER, VIEWER, Phone, reply_text


def messages(app) -> list:
    with app.extensions["operator"].engine.connect() as conn:
        return conn.execute(select(audit.messages).order_by(audit.messages.c.id)).all()


def test_an_authorized_message_is_recorded_with_every_field(app, phone):
    sid = "SM" + uuid.uuid4().hex
    reply = phone.text("  HELP!  ", sid=sid)
    (row,) = messages(app)
    assert row.message_sid == sid
    assert row.phone == ADMIN and row.phone_masked == "+1555***0100"
    assert row.body == "  HELP!  "
    assert row.command == "help" and row.reply == reply
    assert row.segments == 1 and row.outcome == "ok"
    assert row.latency_ms > 0 and row.received_at > 0
    assert len(row.request_id) == 12


def test_a_stranger_gets_an_empty_response_and_is_recorded_without_the_body(app, phone):
    response = phone.post("status", number=STRANGER)
    assert response.status_code == 200
    assert ET.fromstring(response.data).tag == "Response" and list(ET.fromstring(response.data)) == []
    (row,) = messages(app)
    assert (row.outcome, row.phone_masked, row.body, row.reply) == (
        "unauthorized",
        "+1555***0199",
        None,
        None,
    )


def test_a_repeated_message_sid_runs_once_and_gets_the_first_reply(app, phone):
    services = app.extensions["operator"]
    services.monitors.update({f"sys{i}": _named_system_monitor(f"host{i}") for i in range(5)})
    first = phone.text("status")
    assert first.endswith("Reply MORE")
    sid = "SM" + uuid.uuid4().hex
    page_two = phone.text("more", sid=sid)
    # Twilio retries the same MessageSid: same answer, and MORE is not consumed a second time.
    assert phone.text("more", sid=sid) == page_two
    assert phone.text("more", sid=sid) == page_two
    after = phone.text("more")
    assert after != page_two
    outcomes = [r.outcome for r in messages(app)]
    assert outcomes == ["ok", "ok", "duplicate", "duplicate", "ok"]


NOTICE = (
    "Query limit reached (3 per 5 minutes): queries resume in {minutes}m. "
    "ack, snooze, silence, resolve, yes and no always work."
)


def test_the_eleventh_text_in_five_minutes_never_stops_ack_or_any_alert_handling(settings):
    limited = with_settings(settings, rate_limit="10 per 5 minutes", alertmanager_token=WEBHOOK_TOKEN)
    with app_with(limited) as app:
        client = app.test_client()
        fire(client, "HighCPU")
        fire(client, "DiskFull")
        responder = Phone(client, RESPONDER)
        assert all(responder.text("alerts").startswith("2 open:") for _ in range(10))
        assert responder.text("status").startswith("Query limit reached (10 per 5 minutes)")
        assert responder.text("status") is None, "one notice per window"
        handling = {
            "ack 1": "Acked #1 HighCPU",
            "snooze 2 30m": "Snoozed #2 DiskFull for 30m, until ",
            "silence 2 1h": "ALERTMANAGER_URL is not set",
            "unsilence 2": "#2 has no silence from Operator.",
            "resolve 1": "Resolved #1 HighCPU after",
            "snooze all 1h": "Reply YES to snooze 1 alerts for 1h",
            "yes": "Snoozed 1 alert for 1h, until ",
            "ack all": "Acked #2 DiskFull",
            "no": "Nothing to cancel.",
            "on it": "",
        }
        for text, reply in handling.items():
            assert (responder.text(text) or "").startswith(reply), text
        assert responder.text("metrics cpu") is None, "queries still wait for the window"
        outcomes = [r.outcome for r in messages(app)]
        assert outcomes.count("rate_limited") == 3


def test_the_default_limit_lets_a_responder_query_every_ten_seconds_for_five_minutes(settings):
    with app_with(with_settings(settings, rate_limit=Settings(twilio_auth_token="x").rate_limit)) as app:
        responder = Phone(app.test_client(), RESPONDER)
        assert all(responder.text("help").startswith("Commands:") for _ in range(30))
        assert responder.text("help").startswith("Query limit reached")


def test_a_duplicate_does_not_count_against_the_rate_limit(settings):
    with app_with(with_settings(settings, rate_limit="2 per minute")) as app:
        phone = Phone(app.test_client())
        sid = "SM" + uuid.uuid4().hex
        for _ in range(4):
            assert phone.text("help", sid=sid).startswith("Commands:")
        assert phone.text("help").startswith("Commands:")
        assert phone.text("help").startswith("Query limit reached")


def test_over_the_limit_a_number_gets_one_notice_then_nothing(settings):
    with app_with(with_settings(settings, rate_limit="3 per 5 minutes")) as app:
        phone = Phone(app.test_client())
        replies = [phone.text("help") for _ in range(7)]
        assert all(r.startswith("Commands:") for r in replies[:3])
        assert replies[3] == NOTICE.format(minutes=5)
        assert replies[4:] == [None, None, None]
        # Each number has its own budget.
        assert phone.text("help", number=RESPONDER).startswith("Commands:")
        outcomes = [r.outcome for r in messages(app)]
        assert outcomes.count("rate_limited") == 4 and outcomes.count("ok") == 4


def _named_system_monitor(name: str) -> SystemMonitor:
    monitor = SystemMonitor(timeout=5)
    monitor.name = name
    return monitor


@pytest.mark.parametrize("max_segments", [1, 2])
def test_a_long_reply_is_paginated_and_more_sends_the_rest(settings, max_segments):
    with app_with(with_settings(settings, sms_max_segments=max_segments)) as app:
        services = app.extensions["operator"]
        services.monitors.update({f"sys{i}": _named_system_monitor(f"host{i}") for i in range(9)})
        phone = Phone(app.test_client())
        pages = [phone.text("status")]
        while pages[-1].endswith("Reply MORE"):
            pages.append(phone.text("MORE"))
        total = len(pages)
        assert total >= 2
        assert all(segments(p) <= max_segments for p in pages)
        assert pages[0].endswith(f"... (1/{total}) Reply MORE") and pages[-1].endswith(f"({total}/{total})")
        text = " ".join(p.rsplit(" (", 1)[0].removesuffix("...") for p in pages)
        for i in range(9):
            assert f"host{i} ok" in text or f"host{i} WARN" in text
        assert phone.text("more") == "Nothing more to show. Text HELP for commands."
        # MORE belongs to the number that asked.
        assert phone.text("more", number=VIEWER) == "Nothing more to show. Text HELP for commands."


def test_a_new_command_replaces_the_pages_of_the_last_one(app, phone):
    app.extensions["operator"].monitors.update({f"s{i}": _named_system_monitor(f"h{i}") for i in range(6)})
    assert phone.text("status").endswith("Reply MORE")
    phone.text("help")
    assert phone.text("more").startswith("Nothing more")


def test_every_answer_is_recorded_whole_whether_or_not_it_ran_anything(settings):
    # help and STOP are answered without running anything, status runs a command, the fourth
    # text gets the limit notice: each row holds its text and its whole answer.
    with app_with(with_settings(settings, rate_limit="2 per minute")) as app:
        phone = Phone(app.test_client())
        replies = [phone.text(body) for body in ("help", "status", "STOP", "help")]
        rows = messages(app)
    assert [(r.body, r.command, r.outcome) for r in rows] == [
        ("help", "help", "ok"),
        ("status", "status", "ok"),
        ("STOP", "optout", "ok"),
        ("help", "", "rate_limited"),
    ]
    assert [r.reply for r in rows] == replies
    assert [r.segments for r in rows] == [1, 1, 0, segments(replies[3])]
    assert all(r.latency_ms > 0 and r.message_sid and r.request_id for r in rows)


@pytest.mark.parametrize("word", ["STOP", "stop", "Unsubscribe", "START", "unstop"])
def test_twilio_keywords_get_no_reply_and_run_nothing(app, phone, word):
    assert phone.text(word) is None
    (row,) = messages(app)
    assert row.outcome == "ok" and row.command in ("optout", "optin")


def _random_body(rng: random.Random) -> str:
    kind = rng.randrange(10)
    if kind == 0:
        return ""
    if kind == 1:
        return "".join(rng.choice("abc \u200f\u202e\u0645\u0631\u062d\u0628\u0627\u05e9") for _ in range(40))
    if kind == 2:
        return "".join(chr(rng.randrange(0, 32)) for _ in range(rng.randrange(1, 30)))
    if kind == 3:
        return "status\x00" + "x" * rng.randrange(0, 5000)
    if kind == 4:
        return "".join(chr(rng.randrange(0x1F300, 0x1FAFF)) for _ in range(rng.randrange(1, 50)))
    if kind == 5:
        return (
            rng.choice(["help", "more", "?", "STOP", "start", "hi", "ack 12", "status please"]) + "\u00a0" * 3
        )
    if kind == 6:
        return "<Response><Message>&amp;</Message>]]>" * rng.randrange(1, 20)
    if kind == 7:
        return " ".join(
            rng.choice(["the", "is", "what's", "?", "!!", "more", "help", "\n"]) for _ in range(30)
        )
    cut = rng.randrange(1, 5000)
    return "".join(
        chr(rng.choice([rng.randrange(32, 0xD7FF), rng.randrange(0xE000, 0x10FFFF)])) for _ in range(cut)
    )


def test_a_thousand_random_bodies_never_break_the_reply(settings):
    rng = random.Random(20240602)
    with app_with(with_settings(settings, rate_limit="100000 per minute")) as app:
        phone = Phone(app.test_client())
        for i in range(1000):
            body = _random_body(rng)
            response = phone.post(body)
            assert response.status_code == 200, (i, body[:40])
            root = ET.fromstring(response.data)
            assert root.tag == "Response"
            replies = [m.text or "" for m in root.iter("Message")]
            assert len(replies) <= 1
            if replies:
                assert segments(replies[0]) == 1, (i, replies[0])
        rows = messages(app)
        assert len(rows) == 1000
        assert {r.outcome for r in rows} <= {"ok", "error"}
        assert all(r.body is None or len(r.body) <= 640 for r in rows)


def test_a_reply_is_xml_escaped(phone):
    reply = phone.text("a&b<c>d")
    assert reply.startswith("Unknown command 'a&b<c>d'")


def test_a_stop_from_a_stranger_is_still_only_unauthorized(app, phone):
    assert phone.text("STOP", number=STRANGER) is None
    assert messages(app)[0].outcome == "unauthorized"


def test_the_reply_is_sent_even_when_the_body_is_very_long(phone):
    assert reply_text(phone.post("help " + "x" * 5000).data).startswith("No command 'xxxx")
