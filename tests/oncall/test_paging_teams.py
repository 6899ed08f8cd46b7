"""Teams in the app: routing by labels, overrides by SMS, escalation policies, handoff texts and gap warnings.

Time is passed in (`now=`) to the worker's jobs; webhook pages use the real clock, so the rotations
here start an hour ago (Alice's turn) unless a test says otherwise.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app import create_app
from commands import oncall as oncall_command  # noqa: F401 - the command under test
from core import db
from incidents import escalation as legacy_escalation
from incidents import records, reminders
from oncall import escalation, handoffs, schedule, teams
from outbox import calls
from security import mask
from tests.support.alerts import WEBHOOK_TOKEN, fire
from tests.support.apps import with_settings
from tests.support.oncall import ALICE, BOB, CAROL, DAVE, payments_and_infra, texts
from tests.support.paths import PAYLOADS
from tests.support.phones import RESPONDER, VIEWER, Phone
from tests.support.transactions import pattern_matches
from worker.loop import periodic_jobs


def an_hour_ago() -> str:
    return (datetime.now(UTC) - timedelta(hours=1)).replace(microsecond=0).isoformat()


STEPS = {
    "steps": [
        {"after": 0, "notify": "oncall"},
        {"after": "10m", "notify": "next"},
        {"after": "20m", "notify": "team"},
    ]
}


@pytest.fixture
def file():
    return payments_and_infra(start=an_hour_ago(), escalation=STEPS)


@pytest.fixture
def app(settings, file):
    app = create_app(with_settings(settings, file=file, alertmanager_token=WEBHOOK_TOKEN, escalate_after=60.0,
                                   escalation_numbers=("+15555550170",)))  # fmt: skip
    yield app
    app.extensions["operator"].close()


def pages(services) -> list[str]:
    return [to for to, _, kind in texts(services) if kind == "alert"]


def test_a_payments_alert_pages_only_the_payments_on_call(client, services):
    fire(client, "CardDeclines", labels={"team": "payments"})
    assert pages(services) == [ALICE]


def test_an_alert_matching_no_team_pages_the_default_teams_on_call(client, services):
    fire(client, "DiskFull")
    [page] = pages(services)
    assert page in (CAROL, DAVE)


@pytest.mark.parametrize(
    "labels, team", [({"service": "payments-api"}, "payments"), ({"service": "web"}, "default")]
)
def test_a_regular_expression_matcher_routes_by_label(settings, labels, team):
    file = payments_and_infra(start=an_hour_ago())
    file["teams"]["payments"]["match"] = {"service": "=~pay.*", "severity": "page"}
    app = create_app(with_settings(settings, file=file, alertmanager_token=WEBHOOK_TOKEN))
    try:
        fire(app.test_client(), "Slow", labels=labels)
        expected = [ALICE] if team == "payments" else None
        got = pages(app.extensions["operator"])
        assert got == expected if expected else got[0] in (CAROL, DAVE)
    finally:
        app.extensions["operator"].close()


def test_without_teams_alerts_page_todays_recipients(settings):
    app = create_app(with_settings(settings, alertmanager_token=WEBHOOK_TOKEN))
    try:
        fire(app.test_client(), "CardDeclines", labels={"team": "payments"})
        assert sorted(pages(app.extensions["operator"])) == sorted(settings.pager_numbers)
        assert Phone(app.test_client()).text("oncall").startswith("No on-call teams configured")
    finally:
        app.extensions["operator"].close()


@pytest.mark.parametrize("recipients", [(), ("+15555550150", "+15555550151")])
def test_oncall_without_teams_names_exactly_the_numbers_an_alert_pages(settings, recipients):
    app = create_app(with_settings(settings, alertmanager_token=WEBHOOK_TOKEN, alert_recipients=recipients))
    try:
        fire(app.test_client(), "CardDeclines")
        paged = pages(app.extensions["operator"])
        reply = Phone(app.test_client()).text("oncall")
    finally:
        app.extensions["operator"].close()
    assert paged and all(mask(number) in reply for number in paged)
    assert ("ALERT_RECIPIENTS" in reply) == bool(recipients)
    assert all(number not in reply for number in paged)


def test_oncall_without_teams_or_anyone_to_page_says_nobody_is_paged_and_what_to_set(settings):
    app = create_app(with_settings(settings, authorized={VIEWER: "viewer"}, alert_recipients=()))
    try:
        reply = Phone(app.test_client(), VIEWER).text("oncall")
    finally:
        app.extensions["operator"].close()
    assert "nobody" in reply.lower() and "ALERT_RECIPIENTS" in reply and "pages go to" not in reply


def test_oncall_lists_each_team_with_who_now_until_when_and_who_next(phone):
    reply = phone.text("oncall")
    assert reply.splitlines()[0].startswith("payments: Alice until ") and reply.splitlines()[0].endswith(
        ", next Bob"
    )
    assert phone.text("oncall payments") == reply.splitlines()[0]
    assert phone.text("oncall billing").startswith("No team 'billing'. Teams: payments, default")


def test_an_override_by_sms_changes_who_is_paged_next_and_is_listed_until_it_ends(client, services):
    bob = Phone(client, BOB)
    assert bob.text("oncall take 4h payments").startswith("You are on call for payments for 4h, until ")
    assert "payments: Bob until " in bob.text("oncall") and "Override payments: Bob" in bob.text("oncall")
    fire(client, "CardDeclines", labels={"team": "payments"})
    assert pages(services) == [BOB]
    reply = Phone(client, ALICE).text(f"oncall give {BOB[:2]} {BOB[2:5]}-{BOB[5:8]}-{BOB[8:]} 2h")
    assert reply.startswith("Bob is on call for payments for 2h")


@pytest.mark.parametrize(
    "number, text, refusal",
    [
        (VIEWER, "oncall take 4h payments", "Taking or giving on-call needs the responder role."),
        (RESPONDER, "oncall take payments", "For how long?"),
        (RESPONDER, "oncall take 30d payments", "An override lasts from a minute to 7d"),
        (RESPONDER, "oncall give 2h payments", "Give to whom?"),
        (RESPONDER, "oncall give +15555550188 2h payments", "+1555***0188 is not a responder of payments"),
        (CAROL, "oncall take 1h", "Which team? Add its name: payments, default."),
    ],
)
def test_a_bad_override_is_refused_plainly_and_changes_nothing(client, services, number, text, refusal):
    app = client.application
    if number == CAROL:
        # A member of both teams (authorized, so she may text) must say which one she means.
        file = payments_and_infra(start=an_hour_ago())
        file["teams"]["payments"]["members"].append(CAROL)
        services = app.extensions["operator"]
        other = create_app(
            with_settings(
                services.settings, file=file, authorized={**services.settings.authorized, CAROL: "responder"}
            )
        )
        try:
            assert Phone(other.test_client(), CAROL).text(text) == refusal
        finally:
            other.extensions["operator"].close()
        return
    assert Phone(client, number).text(text).startswith(refusal)
    assert "Override" not in Phone(client, number).text("oncall")


def open_payments_alert(client, services, minutes_ago: float) -> int:
    alert_id = fire(client, "CardDeclines", labels={"team": "payments"})
    with services.engine.begin() as conn:
        records.set_fields(conn, alert_id, opened_at=db.now() - minutes_ago * 60)
    return alert_id


def escalations(services) -> list[tuple[str, str]]:
    return [(to, body) for to, body, kind in texts(services) if kind == "escalation"]


def test_escalation_reaches_step_two_when_step_one_does_not_ack_and_each_step_is_recorded(client, services):
    alert_id = open_payments_alert(client, services, minutes_ago=11)
    assert escalation.run(services) == 1
    assert escalation.run(services) == 0  # once
    [(to, body)] = escalations(services)
    assert to == BOB and body.startswith("ESCALATED 11m unacked: FIRING CardDeclines")
    with services.engine.begin() as conn:
        assert records.notes(conn, alert_id, "escalation:") == [
            f"escalation:{alert_id}:0:1",
            f"escalation:{alert_id}:0:2",
        ]
    assert legacy_escalation.run(services) == 0  # ESCALATE_AFTER leaves a team's alert to its policy
    assert escalation.run(services, now=db.now() + 10 * 60) == 1
    assert sorted(to for to, _ in escalations(services)[1:]) == sorted([ALICE, BOB])


@pytest.mark.parametrize("action", ["ack {id}", "snooze {id} 1h", "resolve {id}"])
def test_an_ack_snooze_or_resolve_stops_the_escalation(client, services, action):
    alert_id = open_payments_alert(client, services, minutes_ago=11)
    Phone(client, ALICE).text(action.format(id=alert_id))
    assert escalation.run(services) == 0 and escalations(services) == []


def test_a_repeating_policy_starts_over_after_its_last_step(settings):
    file = payments_and_infra(
        start=an_hour_ago(),
        escalation={"steps": [{"after": 0}, {"after": "5m", "notify": "next"}], "repeat": 1},
    )
    app = create_app(with_settings(settings, file=file, alertmanager_token=WEBHOOK_TOKEN))
    services = app.extensions["operator"]
    try:
        open_payments_alert(app.test_client(), services, minutes_ago=0)
        now = db.now()
        counts = [escalation.run(services, now=now + minutes * 60) for minutes in (5, 10, 15, 20, 30)]
        assert counts == [1, 1, 1, 0, 0]  # next at 5m; the on-call again at 10m, next at 15m; then done
        assert [to for to, _ in escalations(services)] == [BOB, ALICE, BOB]
    finally:
        services.close()


def test_a_via_call_step_queues_a_call_to_the_on_call(settings):
    file = payments_and_infra(
        start=an_hour_ago(), escalation=[{"after": "1m", "notify": "oncall", "via": "call"}]
    )
    app = create_app(with_settings(settings, file=file, alertmanager_token=WEBHOOK_TOKEN))
    services = app.extensions["operator"]
    try:
        alert_id = open_payments_alert(app.test_client(), services, minutes_ago=2)
        assert escalation.run(services) == 1
        with services.engine.connect() as conn:
            placed = calls.about(conn, alert_id)
        assert [c.to_number for c in placed] == [ALICE]
        assert escalations(services) == [], "a call step calls; it does not text"
    finally:
        services.close()


def test_a_reminder_goes_to_the_teams_on_call(client, services):
    alert_id = open_payments_alert(client, services, minutes_ago=300)
    with services.engine.begin() as conn:
        records.set_fields(conn, alert_id, last_notified_at=db.now() - 5 * 3600)
    assert reminders.run(services) == 1
    assert [to for to, _, kind in texts(services) if kind == "reminder"] == [ALICE]


def test_a_handoff_texts_the_incoming_and_the_outgoing_person_once(client, services):
    alert_id = fire(client, "CardDeclines", labels={"team": "payments"})
    rotation = teams.of(services.settings)["payments"].rotation
    handoff = schedule.handoff(rotation, 1)  # Alice's week ends

    def payments_notices() -> list[tuple[str, str]]:
        return [(to, body) for to, body, _ in texts(services, "notice") if to in (ALICE, BOB)]

    handoffs.run(services, now=db.now())
    assert [(to, body.split(" until ")[0]) for to, body in payments_notices()] == [
        (ALICE, "You are on call for payments")
    ]
    handoffs.run(services, now=handoff - 1)  # a second before the handoff: nothing
    assert len(payments_notices()) == 1
    handoffs.run(services, now=handoff)
    handoffs.run(services, now=handoff + 1)  # once
    incoming, outgoing = payments_notices()[1:]
    assert incoming[0] == BOB and outgoing[0] == ALICE
    assert incoming[1].startswith("You are on call for payments until ") and incoming[1].endswith(
        "(1 open alert)"
    )
    assert outgoing[1].startswith("Your payments shift is over: Bob is on call until ")
    assert outgoing[1].endswith(f"1 open alert: #{alert_id}")


def test_a_gap_in_the_schedule_warns_the_teams_admins_a_day_before_it_starts_once(settings):
    from tests.support.oncall import at

    members = [{"phone": ALICE, "name": "Alice"}, {"phone": BOB, "role": "admin", "name": "Bob"}]
    file = {
        "teams": {
            "payments": {
                "members": members,
                "ical": str(PAYLOADS / "oncall_weekly.ics"),
                "zone": "Europe/Berlin",
            }
        }
    }
    app = create_app(with_settings(settings, file=file))
    services = app.extensions["operator"]
    try:
        handoffs.run(services, now=at("2026-12-27T08:00"))  # 25 hours ahead: not yet
        assert not [b for _, b, _ in texts(services, "notice") if "nobody on call" in b]
        handoffs.run(services, now=at("2026-12-27T10:00"))
        handoffs.run(services, now=at("2026-12-27T11:00"))
        warned = [(to, b) for to, b, _ in texts(services, "notice") if "nobody on call" in b]
        assert warned == [
            (
                BOB,
                "payments has nobody on call from Mon 09:00 CET to Thu 09:00 CET: text ONCALL TAKE <hours> payments "
                "to cover it",
            )
        ]
    finally:
        services.close()


RULE = {"name": "errors", "monitor": "system", "query": "cpu", "threshold": -1}


@pytest.mark.parametrize(
    "rule, paged",
    [
        ({**RULE, "team": "payments"}, [ALICE]),
        ({**RULE, "recipients": ["+15555550170"]}, ["+15555550170"]),
        (RULE, "default"),
    ],
)
def test_a_rule_pages_its_team_its_own_recipients_or_the_default_team(settings, rule, paged):
    import alerting
    from incidents import rulefile

    file = {**payments_and_infra(start=an_hour_ago()), "rules": [rule]}
    app = create_app(with_settings(settings, file=file))
    services = app.extensions["operator"]
    try:
        evaluator = alerting.Evaluator(services, rulefile.load_rules(services), "test")
        evaluator.tick(db.now())
        got = pages(services)
        assert got == paged if paged != "default" else len(got) == 1 and got[0] in (CAROL, DAVE)
    finally:
        services.close()


def test_a_rule_naming_an_unknown_team_is_refused(settings):
    from config import ConfigError
    from incidents import rulefile

    app = create_app(
        with_settings(settings, file={**payments_and_infra(), "rules": [{**RULE, "team": "billing"}]})
    )
    try:
        with pytest.raises(
            ConfigError, match="rules: rule 'errors': unknown team 'billing'; teams: default, payments"
        ):
            rulefile.load_rules(app.extensions["operator"])
    finally:
        app.extensions["operator"].close()


@pytest.mark.slow
def test_on_postgresql_two_workers_running_the_policy_escalate_each_step_once_and_hand_over_once(settings):
    from tests.support.servers import fresh_postgres_database

    url, drop = fresh_postgres_database()
    file = payments_and_infra(start=an_hour_ago(), escalation=STEPS)
    config = with_settings(settings, database_url=url, file=file, alertmanager_token=WEBHOOK_TOKEN)
    first, second = create_app(config), create_app(config)
    try:
        one, two = first.extensions["operator"], second.extensions["operator"]
        open_payments_alert(first.test_client(), one, minutes_ago=11)
        assert escalation.run(one) + escalation.run(two) == 1
        assert [to for to, _ in escalations(one)] == [BOB]
        handoffs.run(one)
        handoffs.run(two)
        assert [
            to for to, body, _ in texts(one, "notice") if body.startswith("You are on call for payments")
        ] == [ALICE]
    finally:
        first.extensions["operator"].close()
        second.extensions["operator"].close()
        drop()


# A pattern that backtracks exponentially in Python's re: ~2^n steps on n characters that end
# without the suffix. Under the old matcher this label held the webhook for minutes.
STALLING = r"=~([a-z0-9]+-?)+\.prod\.internal"


def test_a_team_pattern_that_would_backtrack_answers_the_webhook_and_the_alert_is_stored(settings):
    file = payments_and_infra(start=an_hour_ago())
    file["teams"]["payments"]["match"] = {"service": STALLING}
    app = create_app(with_settings(settings, file=file, alertmanager_token=WEBHOOK_TOKEN))
    try:
        client = app.test_client()
        alert_id = fire(client, "Slow", labels={"service": "a" * 40 + "!"})  # 41 characters, no match
        with app.extensions["operator"].engine.connect() as conn:
            assert records.get(conn, alert_id) is not None
        assert pages(app.extensions["operator"])[0] in (CAROL, DAVE)  # no match: the default team
        fire(client, "Fast", labels={"service": "web-1.prod.internal"})
        assert ALICE in pages(app.extensions["operator"])
    finally:
        app.extensions["operator"].close()


def test_team_patterns_are_matched_before_the_webhook_opens_its_write_transaction(settings):
    file = payments_and_infra(start=an_hour_ago())
    file["teams"]["payments"]["match"] = {"service": "=~pay.*"}
    app = create_app(with_settings(settings, file=file, alertmanager_token=WEBHOOK_TOKEN))
    engine = app.extensions["operator"].engine
    try:
        with pattern_matches(engine) as inside:
            fire(app.test_client(), "CardDeclines", labels={"service": "payments-api"})
        assert pages(app.extensions["operator"]) == [ALICE]
        assert inside and not any(inside)
    finally:
        app.extensions["operator"].close()


def test_the_workers_jobs_match_team_patterns_before_their_write_transactions(settings):
    file = payments_and_infra(start=an_hour_ago(), escalation=STEPS)
    file["teams"]["payments"]["match"] = {"service": "=~pay.*"}
    app = create_app(with_settings(settings, file=file))
    services = app.extensions["operator"]
    with services.engine.begin() as conn:  # stored directly: no webhook sorted it ahead
        records.fire(conn, "alertmanager", "k1", "CardDeclines", labels={"service": "payments-worker"})
    try:
        with pattern_matches(services.engine) as inside:
            for job, _ in periodic_jobs(15.0)[:4]:  # the sort, then escalation and handoffs
                job(services)
        assert inside and not any(inside)
    finally:
        app.extensions["operator"].close()
