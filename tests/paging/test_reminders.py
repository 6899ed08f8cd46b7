"""Reminders for webhook alerts: one per group every ALERT_REPEAT while nobody has taken it."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from core import db
from incidents import escalation, records, reminders
from outbox import backends, queue
from outbox.sender import Sender
from rate_limiter import RateLimiter
from tests.support.apps import with_settings
from tests.support.paths import PAYLOADS
from tests.support.phones import ADMIN, RESPONDER, VIEWER, Phone

TOKEN = "am-token-reminders"
BOSS = "+15555550170"
HOUR = 3600.0


@pytest.fixture
def settings(settings):
    return with_settings(
        settings,
        alertmanager_token=TOKEN,
        datadog_token=TOKEN,
        rate_limit="1000 per minute",
        escalate_after=900.0,
        escalation_numbers=(BOSS,),
    )


def post(client, name: str) -> int:
    """Deliver a captured payload; returns the alert id it opened or updated."""
    body = json.loads((PAYLOADS / f"{name}.json").read_text())
    path = "/webhook/datadog" if name.startswith("datadog") else "/webhook/alertmanager"
    response = client.post(path, json=body, headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.json
    return response.json["alerts"][0]


def paged_at(services, alert_id: int, hours_ago: float) -> float:
    """Pretend the alert started and was last texted `hours_ago`; returns 'now' for the job."""
    now = db.now()
    with services.engine.begin() as conn:
        then = now - hours_ago * HOUR
        records.set_fields(conn, alert_id, started_at=then, opened_at=then, last_notified_at=then)
    return now


def texts(services, kind: str) -> list:
    o = queue.outbox.c
    with services.engine.connect() as conn:
        return conn.execute(select(queue.outbox).where(o.kind == kind).order_by(o.id)).all()


def test_a_firing_group_gets_one_reminder_per_recipient_after_the_repeat_interval(client, services):
    alert_id = post(client, "alertmanager_firing")
    now = paged_at(services, alert_id, 3.9)
    assert reminders.run(services, now) == 0
    now = paged_at(services, alert_id, 4)
    assert reminders.run(services, now) == 1
    sent = texts(services, "reminder")
    assert sorted(t.to_number for t in sent) == sorted([ADMIN, RESPONDER]), "viewers are never paged"
    assert VIEWER not in {t.to_number for t in sent}
    assert {t.body for t in sent} == {f"STILL FIRING 4h: 3 HighCPU web-1,web-2,web-3 #{alert_id}"}
    assert all(t.alert_id == alert_id and t.segments == 1 for t in sent)
    assert reminders.run(services, now + 60) == 0, "the next one waits a whole interval"
    assert reminders.run(services, now + 4 * HOUR) == 1
    assert len(texts(services, "reminder")) == 4


def test_a_datadog_alert_is_reminded_with_its_state_word(client, services):
    alert_id = post(client, "datadog_custom_warn")
    now = paged_at(services, alert_id, 5)
    reminders.run(services, now)
    assert texts(services, "reminder")[0].body.startswith("STILL WARN 5h: ")


def test_rule_alerts_are_left_to_the_rules_own_repeat(services):
    with services.engine.begin() as conn:
        alert, _ = records.fire(conn, "rule", "high_cpu", "high_cpu", summary="CPU 91%")
        records.set_fields(conn, alert.id, last_notified_at=db.now() - 10 * HOUR)
    assert reminders.run(services) == 0


@pytest.mark.parametrize("words", ["ack {id}", "snooze {id} 8h", "resolve {id}"])
def test_taking_an_alert_by_sms_stops_its_reminders_and_escalation(client, services, words):
    alert_id = post(client, "alertmanager_firing")
    assert Phone(client, RESPONDER).text(words.format(id=alert_id)).split()[0] in (
        "Acked",
        "Snoozed",
        "Resolved",
    )
    now = paged_at(services, alert_id, 5)
    assert reminders.run(services, now) == 0
    assert escalation.run(services, now) == 0
    assert texts(services, "reminder") == [] and texts(services, "escalation") == []


def test_a_silence_stops_reminders_until_it_ends(client, services):
    alert_id = post(client, "alertmanager_firing")
    now = paged_at(services, alert_id, 5)
    with services.engine.begin() as conn:
        records.set_fields(conn, alert_id, silence_id="5d2b", silenced_until=now + 2 * HOUR)
    assert reminders.run(services, now) == 0 and escalation.run(services, now) == 0
    assert reminders.run(services, now + 2 * HOUR + 1) == 1, "due since long ago: reminded when it ends"


def test_a_snoozed_alert_is_reminded_when_the_snooze_ends(client, services):
    alert_id = post(client, "alertmanager_firing")
    now = paged_at(services, alert_id, 1)
    with services.engine.begin() as conn:
        records.set_fields(conn, alert_id, snoozed_until=now + 1800)
    assert reminders.run(services, now + 1799) == 0
    assert reminders.run(services, now + 1801) == 1
    assert reminders.run(services, now + 1900) == 0, "then back to the repeat interval"


def test_a_reminder_still_waiting_is_replaced_not_stacked(client, services):
    alert_id = post(client, "alertmanager_firing")
    now = paged_at(services, alert_id, 4)
    reminders.run(services, now)
    reminders.run(services, now + 4 * HOUR)  # Twilio was down: the first reminders never left
    statuses = [(t.body.split(":")[0], t.status) for t in texts(services, "reminder")]
    assert statuses == [("STILL FIRING 4h", "dropped")] * 2 + [("STILL FIRING 8h", "queued")] * 2


def test_reminders_obey_the_storm_limits(client, services):
    alert_id = post(client, "alertmanager_firing")
    storm = RateLimiter(services.limiter.storage, "1 per hour", "alerts")
    sender = Sender(
        services.engine, services.settings, backends.make_backend(services.settings), storm, records, "w1"
    )
    sender.step()
    reminders.run(services, paged_at(services, alert_id, 4))
    sender.step()
    assert {t.status for t in texts(services, "alert")} == {"sent"}
    assert {t.status for t in texts(services, "reminder")} == {"folded"}


def test_reminders_are_off_without_anyone_to_page(settings):
    from app import create_app

    app = create_app(with_settings(settings, authorized={VIEWER: "viewer"}))
    services = app.extensions["operator"]
    try:
        alert_id = post(app.test_client(), "alertmanager_firing")
        assert reminders.run(services, paged_at(services, alert_id, 9)) == 0
    finally:
        services.close()
