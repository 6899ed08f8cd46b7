"""Escalation: alerts nobody took within ESCALATE_AFTER go to ESCALATION_NUMBERS, once."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app import create_app
from core import db
from incidents import escalation, records
from outbox.queue import outbox
from tests.support.apps import with_settings

BOSS, DEPUTY = "+15555550170", "+15555550171"


@pytest.fixture
def settings(settings):
    return with_settings(settings, escalate_after=900.0, escalation_numbers=(BOSS, DEPUTY))


def open_alert(services, name: str = "HighCPU", minutes_ago: float = 20, **fields) -> int:
    with services.engine.begin() as conn:
        alert, _ = records.fire(conn, "alertmanager", name, name, labels={"alertname": name})
        records.set_fields(conn, alert.id, opened_at=db.now() - minutes_ago * 60, **fields)
        return alert.id


def escalations(services) -> list:
    with services.engine.connect() as conn:
        return conn.execute(select(outbox).where(outbox.c.kind == "escalation").order_by(outbox.c.id)).all()


def test_an_unacked_alert_past_the_deadline_goes_to_every_escalation_number(services):
    alert_id = open_alert(services)
    assert escalation.run(services) == 1
    sent = escalations(services)
    assert [t.to_number for t in sent] == [BOSS, DEPUTY]
    assert sent[0].body == f"ESCALATED 20m unacked: FIRING HighCPU #{alert_id}"
    assert all(t.alert_id == alert_id and t.segments == 1 for t in sent)


def test_an_alert_is_escalated_only_once(services):
    open_alert(services)
    escalation.run(services)
    assert escalation.run(services) == 0
    assert len(escalations(services)) == 2


@pytest.mark.parametrize(
    "fields",
    [
        {"acked_at": 1.0, "acked_by": "+15555550101"},
        {"silence_id": "abc"},
        {"snoozed_until": 4102444800.0},
    ],
)
def test_an_alert_someone_took_is_not_escalated(services, fields):
    open_alert(services, **fields)
    assert escalation.run(services) == 0 and escalations(services) == []


def test_a_young_or_resolved_alert_is_not_escalated(services):
    open_alert(services, "Young", minutes_ago=5)
    old = open_alert(services, "Old")
    with services.engine.begin() as conn:
        records.close(conn, old)
    assert escalation.run(services) == 0


def test_an_expired_snooze_escalates_again(services):
    open_alert(services, snoozed_until=db.now() - 1)
    assert escalation.run(services) == 1


def test_escalation_is_off_without_a_deadline_or_numbers(settings):
    for changes in ({"escalate_after": 0.0}, {"escalation_numbers": ()}):
        app = create_app(with_settings(settings, **changes))
        services = app.extensions["operator"]
        open_alert(services)
        assert escalation.run(services) == 0
        services.close()
