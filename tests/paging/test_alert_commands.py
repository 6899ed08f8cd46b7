"""alerts, ack, snooze, silence, unsilence, resolve, yes/no from a signed SMS."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select, update

from conversation import pending
from core import db
from incidents import records
from outbox.queue import outbox
from tests.support.alerts import WEBHOOK_TOKEN, age, alert, deliver, fire, fire_datadog
from tests.support.apps import with_settings
from tests.support.phones import ADMIN, RESPONDER, VIEWER, Phone
from tests.support.servers import free_port


@pytest.fixture
def settings(settings):
    return with_settings(
        settings,
        alertmanager_token=WEBHOOK_TOKEN,
        datadog_token=WEBHOOK_TOKEN,
        rate_limit="1000 per minute",
        alertmanager_url=f"http://127.0.0.1:{free_port()}",  # nothing listens there
    )


@pytest.fixture
def responder(client) -> Phone:
    return Phone(client, RESPONDER)


@pytest.fixture
def viewer(client) -> Phone:
    return Phone(client, VIEWER)


# --- alerts --------------------------------------------------------------------------------


def test_alerts_says_when_nothing_is_open(phone):
    assert phone.text("alerts") == "No open alerts."


def test_alerts_lists_open_alerts_newest_first(phone, client):
    fire(client, "HighCPU", ("web-1", "web-2", "web-3"))
    fire(client, "DiskFull", ("db-1",))
    reply = phone.text("alerts")
    assert reply.startswith("2 open:\n#2 DiskFull db-1 ")
    assert "\n#1 HighCPU web-1,web-2 +1 " in reply


@pytest.mark.parametrize("words", ["any alerts?", "what's firing", "Alerts please", "show me the incidents"])
def test_alerts_understands_plain_questions(phone, client, words):
    fire(client, "HighCPU")
    assert phone.text(words).startswith("1 open:")


def test_alerts_with_an_id_describes_one_alert(phone, client):
    alert_id = fire(client, "HighCPU", ("web-1", "web-2"), summary="CPU above 90%")
    reply = phone.text(f"alerts {alert_id}")
    assert re.match(
        rf"#{alert_id} FIRING HighCPU for \S+ on web-1, web-2\. CPU above 90%\. from alertmanager\.$", reply
    )


def test_a_closed_alert_is_described_as_resolved_never_unknown(phone, client, services):
    alert_id = fire(client, "HighCPU")
    phone.text(f"resolve {alert_id}")
    age(services, alert_id, resolved_at=300)
    for words in (f"alerts {alert_id}", f"ack {alert_id}", f"snooze {alert_id} 5m", f"silence {alert_id} 1h"):
        assert phone.text(words).startswith(f"#{alert_id} resolved 5m ago (HighCPU)")
    assert phone.text("alerts") == f"No open alerts. Last: #{alert_id} resolved 5m ago (HighCPU)."


def test_an_id_that_never_existed_says_so(phone):
    assert phone.text("ack 99") == "No alert #99. Text ALERTS for open ones."


def test_alerts_recent_includes_resolved_ones(phone, client):
    first = fire(client, "HighCPU")
    fire(client, "DiskFull")
    phone.text(f"resolve {first}")
    reply = phone.text("alerts recent")
    assert f"#{first} resolved" in reply and "DiskFull" in reply


# --- ack -----------------------------------------------------------------------------------


def test_a_bare_ack_acks_the_last_alert_that_reached_you(responder, app, client, services):
    fire(client, "HighCPU")
    second = fire(client, "DiskFull")
    deliver(app)
    assert responder.text("ack").startswith(f"Acked #{second} DiskFull")
    assert alert(services, second).acked_by == RESPONDER
    assert alert(services, 1).acked_at is None


def test_a_bare_ack_skips_recovery_texts(responder, app, client, services):
    first = fire(client, "HighCPU")
    second = fire(client, "DiskFull")
    deliver(app)
    Phone(client, ADMIN).text(f"resolve {first}")  # queues a RESOLVED text for the responder
    deliver(app)
    assert responder.text("ack").startswith(f"Acked #{second}")


@pytest.mark.parametrize("words", ["on it", "ack", "ack it"])
def test_a_bare_ack_of_a_page_still_in_the_outbox_asks_first(responder, client, services, words):
    alert_id = fire(client, "PostgresDown", ("db-1",))
    reply = responder.text(words)
    assert reply == (
        f"#{alert_id} PostgresDown db-1 has not reached you yet. Reply YES to ack it, or text 'ack {alert_id}'."
    )
    assert alert(services, alert_id).acked_at is None
    assert responder.text("yes") == f"Acked 1 alert: #{alert_id}."
    assert alert(services, alert_id).acked_by == RESPONDER


def test_a_bare_ack_names_the_candidates_when_a_newer_page_is_on_its_way(responder, app, client, services):
    first = fire(client, "HighCPU")
    deliver(app)
    second = fire(client, "DiskFull", ("db-2",))
    reply = responder.text("on it")
    assert reply == (
        f"Which alert? #{first} HighCPU web-1, #{second} DiskFull db-2 (not here yet). "
        f"Text 'ack {first}', or YES to ack all 2."
    )
    assert alert(services, first).acked_at is None and alert(services, second).acked_at is None
    assert responder.text(f"ack {second}").startswith(f"Acked #{second} DiskFull")


def test_a_page_that_failed_or_was_undelivered_is_never_what_a_bare_ack_means(
    responder, app, client, services
):
    first = fire(client, "HighCPU")
    deliver(app)
    second = fire(client, "DiskFull")
    deliver(app)
    with services.engine.begin() as conn:
        o = outbox.c
        conn.execute(
            update(outbox).where(o.alert_id == second, o.to_number == RESPONDER).values(status="undelivered")
        )
    assert responder.text("ack").startswith(f"Acked #{first} HighCPU")


def test_a_bare_resolve_or_silence_of_an_unseen_page_asks_without_acting(responder, client, services):
    alert_id = fire(client, "HighCPU")
    assert responder.text("fixed") == (
        f"#{alert_id} HighCPU web-1 has not reached you yet. Text 'resolve {alert_id}' if you mean it."
    )
    assert responder.text("silence 2h") == (
        f"#{alert_id} HighCPU web-1 has not reached you yet. Text 'silence {alert_id} 2h' if you mean it."
    )
    assert responder.text("snooze 30m").startswith(f"#{alert_id} HighCPU web-1 has not reached you yet.")
    taken = alert(services, alert_id)
    assert (taken.status, taken.acked_at, taken.snoozed_until, taken.silence_id) == (
        "firing",
        None,
        None,
        None,
    )


@pytest.mark.parametrize(
    "words",
    [
        "cpu close to limit",
        "the deploy is fixed now",
        "load looks fixed now",
        "disk is resolving itself",
    ],
)
def test_an_action_word_mid_sentence_never_acts_on_the_last_alert(responder, client, services, words):
    alert_id = fire(client, "HighCPU")
    reply = responder.text(words)
    assert reply.startswith("Which alert? Text '")
    assert f" {alert_id}' for #{alert_id} HighCPU" in reply
    taken = alert(services, alert_id)
    assert (taken.status, taken.acked_at, taken.silence_id) == ("firing", None, None)


@pytest.mark.parametrize("words", ["ack", "ok ack it", "please ack", "ack that thanks"])
def test_an_action_word_first_still_means_the_last_alert(responder, app, client, services, words):
    alert_id = fire(client, "HighCPU")
    deliver(app)
    assert responder.text(words).startswith(f"Acked #{alert_id} HighCPU")


def test_a_bare_ack_with_nothing_sent_says_so(responder):
    assert responder.text("ack") == "No alert was texted to you yet. Text ALERTS for open ones."


@pytest.mark.parametrize("words", ["ack 1", "ACK #1!", "acknowledge alert 1 please", "can you ack 1"])
def test_ack_takes_an_id_however_it_is_typed(responder, client, services, words):
    fire(client, "HighCPU")
    assert responder.text(words).startswith("Acked #1 HighCPU")
    assert alert(services, 1).acked_at is not None


def test_a_second_ack_says_who_acked_first(phone, responder, client):
    fire(client, "HighCPU")
    responder.text("ack 1")
    assert phone.text("ack 1").startswith("#1 already acked by +1555***0101")
    assert responder.text("ack 1").startswith("#1 already acked by you")


def test_ack_all_asks_first_and_acts_on_yes(responder, client, services):
    for name in ("A", "B", "C"):
        fire(client, name)
    assert responder.text("ack all") == "Reply YES to ack 3 alerts (#1,#2,#3) (within 5 min)."
    assert all(alert(services, i).acked_at is None for i in (1, 2, 3))
    assert responder.text("yes") == "Acked 3 alerts: #1,#2,#3."
    assert all(alert(services, i).acked_by == RESPONDER for i in (1, 2, 3))
    assert responder.text("YES") == "Nothing to confirm: a YES counts within 5 minutes of the question."


def test_ack_all_with_one_alert_acts_at_once(responder, client, services):
    fire(client, "A")
    assert responder.text("ack all").startswith("Acked #1 A")


def test_a_yes_after_five_minutes_does_nothing(responder, client, services):
    fire(client, "A")
    fire(client, "B")
    responder.text("ack all")
    with services.engine.begin() as conn:
        conn.execute(update(pending.confirmations).values(expires_at=db.now() - 1))
    assert responder.text("yes").startswith("Nothing to confirm")
    assert alert(services, 1).acked_at is None


def test_a_yes_only_confirms_the_askers_own_question(responder, phone, client, services):
    fire(client, "A")
    fire(client, "B")
    responder.text("ack all")
    assert phone.text("yes").startswith("Nothing to confirm")
    assert alert(services, 1).acked_at is None


def test_no_drops_the_question(responder, client, services):
    fire(client, "A")
    fire(client, "B")
    responder.text("ack all")
    assert responder.text("no") == "OK, nothing done."
    assert responder.text("yes").startswith("Nothing to confirm")


def test_a_yes_skips_alerts_resolved_meanwhile(responder, client, services):
    fire(client, "A")
    fire(client, "B")
    responder.text("ack all")
    responder.text("resolve 1")
    assert responder.text("yes") == "Acked 1 alert: #2."


# --- roles ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "words, name",
    [
        ("ack 1", "ack"),
        ("snooze 1 5m", "snooze"),
        ("silence 1 1h", "silence"),
        ("unsilence 1", "unsilence"),
        ("resolve 1", "resolve"),
    ],
)
def test_a_viewer_is_told_which_role_a_command_needs(viewer, client, services, words, name):
    fire(client, "HighCPU")
    assert viewer.text(words) == f"'{name}' needs the responder role; you are viewer."
    current = alert(services, 1)
    assert (current.status, current.acked_at, current.snoozed_until) == ("firing", None, None)


def test_a_viewer_may_list_alerts(viewer, client):
    fire(client, "HighCPU")
    assert viewer.text("alerts").startswith("1 open:")


# --- snooze --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "words, seconds",
    [
        ("snooze 1 30m", 1800),
        ("snooze #1 for 2 hours", 7200),
        ("snooze 1 1h30m", 5400),
        ("snooze 1 45", 2700),
    ],
)
def test_snooze_holds_reminders_for_the_given_time(responder, client, services, words, seconds):
    fire(client, "HighCPU")
    reply = responder.text(words)
    assert reply.startswith("Snoozed #1 HighCPU for ")
    assert alert(services, 1).snoozed_until == pytest.approx(db.now() + seconds, abs=5)


def test_a_bare_snooze_applies_to_the_last_alert_that_reached_you(responder, app, client, services):
    fire(client, "A")
    fire(client, "B")
    deliver(app)
    assert re.fullmatch(r"Snoozed #2 B for 10m, until (\w{3} )?\d\d:\d\d UTC\.", responder.text("snooze 10m"))


@pytest.mark.parametrize(
    "words, reply",
    [
        ("snooze 1", "How long? e.g. 'snooze 12 30m' (s, m, h, d)."),
        ("snooze 1 30d", "At most 7d for snooze."),
    ],
)
def test_snooze_explains_a_missing_or_too_long_duration(responder, client, words, reply):
    fire(client, "HighCPU")
    assert responder.text(words) == reply


def test_snooze_all_asks_first(responder, client, services):
    fire(client, "A")
    fire(client, "B")
    assert responder.text("snooze all 1h") == "Reply YES to snooze 2 alerts for 1h (within 5 min)."
    assert re.fullmatch(
        r"Snoozed 2 alerts for 1h, until (\w{3} )?\d\d:\d\d UTC: #1,#2\.", responder.text("y")
    )
    assert alert(services, 2).snoozed_until > db.now() + 3000


# --- silence / unsilence without a reachable Alertmanager ----------------------------------


def test_silence_explains_an_unreachable_alertmanager_and_changes_nothing(responder, client, services):
    fire(client, "HighCPU")
    reply = responder.text("silence 1 2h")
    assert reply.startswith("Could not silence #1: Alertmanager did not answer")
    assert alert(services, 1).silence_id is None


def test_silence_refuses_alerts_that_do_not_come_from_alertmanager(responder, client):
    alert_id = fire_datadog(client)
    assert responder.text(f"silence {alert_id} 1h") == (
        f"#{alert_id} comes from datadog, not Alertmanager. Try 'snooze {alert_id} 2h' instead."
    )


def test_silence_needs_alertmanager_url(settings, client):
    from app import create_app

    app = create_app(with_settings(settings, alertmanager_url=""))
    fire(app.test_client(), "HighCPU")
    reply = Phone(app.test_client(), RESPONDER).text("silence 1 1h")
    assert reply.startswith("ALERTMANAGER_URL is not set")
    app.extensions["operator"].close()


def test_unsilence_without_a_silence_says_so(responder, client):
    fire(client, "HighCPU")
    assert responder.text("unsilence 1") == "#1 has no silence from Operator."


# --- resolve -------------------------------------------------------------------------------


def test_resolve_closes_and_tells_the_others_paged(responder, client, services):
    fire(client, "HighCPU")
    age(services, 1, started_at=23 * 60)
    assert responder.text("resolve 1") == "Resolved #1 HighCPU after 23m. Told 1 other."
    assert alert(services, 1).status == "resolved"
    with services.engine.connect() as conn:
        notices = conn.execute(select(outbox).where(outbox.c.kind == "recovery")).all()
    assert [(n.to_number, n.body) for n in notices] == [
        (ADMIN, "RESOLVED by +1555***0101 after 23m HighCPU #1")
    ]


def test_resolve_records_who_closed_it(responder, client, services):
    fire(client, "HighCPU")
    responder.text("resolve 1")
    assert alert(services, 1).resolved_by == RESPONDER


def test_a_silence_shows_only_until_it_ends(phone, client, services):
    fire(client, "HighCPU")
    with services.engine.begin() as conn:
        records.set_fields(conn, 1, silence_id="5d2b", silenced_until=db.now() + 3600)
    assert phone.text("alerts").endswith("(silenced)")
    assert "silenced in Alertmanager" in phone.text("alerts 1")
    with services.engine.begin() as conn:
        records.set_fields(conn, 1, silenced_until=db.now() - 1)
    assert "silenced" not in phone.text("alerts") and "silenced" not in phone.text("alerts 1")


def test_a_refused_or_failed_command_never_leaks_a_traceback(responder, client):
    fire(client, "HighCPU")
    for words in ("ack 99999999999", "snooze x y", "silence", "resolve all", "unsilence #"):
        reply = responder.text(words)
        assert reply and "Traceback" not in reply and "failed inside Operator" not in reply


def test_every_reply_fits_one_segment(responder, client):
    for i in range(8):
        fire(client, f"VeryLongAlertNameNumber{i}", tuple(f"host-{j}" for j in range(10)), summary="x" * 300)
    for words in ("alerts", "alerts 1", "ack all", "yes", "snooze all 1h", "yes"):
        reply = responder.text(words)
        assert len(reply) <= 160, reply


@pytest.mark.parametrize("verb", ["resolve", "silence", "unsilence"])
def test_one_alert_commands_refuse_all(responder, client, services, verb):
    fire(client, "HighCPU")
    assert responder.text(f"{verb} all 1h") == f"{verb} works on one alert at a time, e.g. '{verb} 12'."
    assert alert(services, 1).status == "firing"
