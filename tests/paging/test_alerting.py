"""Rule evaluation: ok -> pending -> firing -> resolved, reminders, flapping, no data, restarts."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update

import alerting
from incidents import records
from incidents.rules import parse_rules
from monitors import BaseMonitor, MonitorError
from outbox import queue
from tests.support.phones import ADMIN, RESPONDER, Phone

T0 = 1_900_000_000.0  # a fixed clock: every evaluation gets its time explicitly


class Dial(BaseMonitor):
    """A monitor whose reading the test sets, like a real backend that changes over time."""

    name = "dial"

    def __init__(self):
        super().__init__(timeout=2)
        self.reading: float | None | Exception = 0.0

    def _check(self) -> str:
        return "ok"

    def _value(self, query: str) -> float | None:
        if isinstance(self.reading, Exception):
            raise self.reading
        return self.reading


@pytest.fixture
def dial(services):
    services.monitors["dial"] = Dial()
    return services.monitors["dial"]


def evaluator(services, **overrides) -> alerting.Evaluator:
    rule = {
        "name": "high_cpu",
        "monitor": "dial",
        "query": "cpu",
        "op": ">",
        "threshold": 80,
        "for": "5m",
        "repeat": "30m",
        "recipients": [ADMIN, RESPONDER],
        "message": "CPU {value}% over {threshold}% for {duration}",
        **overrides,
    }
    rules = parse_rules([rule], services.settings, services.monitors)
    return alerting.Evaluator(services, rules, "test-worker")


def texts(services, to=ADMIN) -> list[tuple[str, str]]:
    o = queue.outbox.c
    with services.engine.connect() as conn:
        rows = conn.execute(select(o.kind, o.body, o.status).where(o.to_number == to).order_by(o.id)).all()
    return [(r.kind, r.body) for r in rows if r.status != "dropped"]


def state(services) -> str:
    with services.engine.connect() as conn:
        return conn.execute(select(alerting.rule_states.c.state)).scalar()


def test_a_breach_pages_once_reminds_at_the_repeat_interval_and_resolves(services, dial):
    ev = evaluator(services)
    dial.reading = 40
    ev.tick(T0)
    assert state(services) == "ok"
    dial.reading = 91.234
    ev.tick(T0 + 60)
    assert state(services) == "pending" and texts(services) == []
    ev.tick(T0 + 60 + 240)
    assert state(services) == "pending"
    ev.tick(T0 + 60 + 300)
    assert state(services) == "firing"
    ev.tick(T0 + 60 + 360)
    [(kind, body)] = texts(services)
    assert (kind, body) == ("alert", "ALERT #1: CPU 91.2% over 80% for 5m")
    assert texts(services, RESPONDER) == texts(services)
    dial.reading = 95
    ev.tick(T0 + 60 + 300 + 1800)
    assert texts(services)[-1] == ("reminder", "STILL FIRING 35m: #1 CPU 95% over 80% for 35m")
    ev.tick(T0 + 60 + 300 + 1800 + 60)
    assert len(texts(services)) == 2, "the next reminder waits a full repeat interval"
    dial.reading = 45
    ev.tick(T0 + 60 + 50 * 60)
    assert state(services) == "resolved"
    assert texts(services)[-1] == ("recovery", "RESOLVED after 50m: #1 high_cpu now 45")
    with services.engine.connect() as conn:
        alert = records.get(conn, 1)
    assert alert.status == "resolved" and alert.source == "rule" and alert.key == "high_cpu"
    assert len(texts(services)) == 3


def test_a_restart_mid_incident_neither_repages_nor_forgets(services, dial):
    ev = evaluator(services, **{"for": 0})
    dial.reading = 99
    ev.tick(T0)
    restarted = evaluator(services, **{"for": 0})
    for minute in range(1, 10):
        restarted.tick(T0 + minute * 60)
    assert [k for k, _ in texts(services)] == ["alert"]
    dial.reading = 10
    restarted.tick(T0 + 600)
    assert texts(services)[-1] == ("recovery", "RESOLVED after 10m: #1 high_cpu now 10")


def test_a_flapping_rule_texts_once_when_it_fires_and_once_when_it_settles(services, dial):
    ev = evaluator(services, **{"for": 0, "repeat": 0})
    for minute, reading in enumerate([90, 10, 90, 10, 90, 10]):
        dial.reading = reading
        ev.tick(T0 + minute * 30)
    assert [k for k, _ in texts(services)] == ["alert", "recovery"]
    o = queue.outbox.c
    with services.engine.connect() as conn:
        dropped = conn.scalar(select(o.id).where(o.status == "dropped").limit(1))
        alerts = conn.execute(select(records.alerts)).all()
    assert dropped is not None
    assert len(alerts) == 1, "flips within RECOVERY_DELAY reopen the same incident"


def test_a_recovery_notice_waits_for_the_recovery_delay(services, dial):
    ev = evaluator(services, **{"for": 0})
    dial.reading = 90
    ev.tick(T0)
    dial.reading = 10
    ev.tick(T0 + 60)
    o = queue.outbox.c
    with services.engine.connect() as conn:
        not_before = conn.scalar(select(o.not_before).where(o.kind == "recovery"))
    assert not_before == T0 + 60 + services.settings.recovery_delay


def run(ev, services, start: float, ticks: int) -> float:
    """`ticks` evaluations one ALERT_INTERVAL apart from `start`; returns the next tick's time."""
    interval = services.settings.alert_interval
    for n in range(ticks):
        ev.tick(start + n * interval)
    return start + ticks * interval


def ticks_until_paged(ev, services, start: float, limit: int = 30) -> int:
    """Evaluation intervals from `start` until a page is queued."""
    for n in range(1, limit + 1):
        ev.tick(start + (n - 1) * services.settings.alert_interval)
        if any(kind == "alert" for kind, _ in texts(services)):
            return n
    return limit + 1


def test_an_empty_result_is_neither_a_breach_nor_an_error_and_a_later_breach_pages_at_once(services, dial):
    ev = evaluator(services, **{"for": 0})
    dial.reading = None
    now = run(ev, services, T0, 45)
    assert state(services) == "ok" and texts(services) == []
    dial.reading = 99
    assert ticks_until_paged(ev, services, now) == 1
    assert texts(services) == [("alert", "ALERT #1: CPU 99% over 80% for 0s")]


def test_a_firing_rule_whose_query_goes_empty_resolves_like_prometheus(services, dial):
    ev = evaluator(services, **{"for": 0})
    dial.reading = 99
    ev.tick(T0)
    dial.reading = None
    ev.tick(T0 + 600)
    assert state(services) == "resolved"
    assert texts(services)[-1] == ("recovery", "RESOLVED after 10m: #1 high_cpu now empty")


def test_no_data_alert_makes_an_empty_result_a_breach(services, dial):
    ev = evaluator(services, no_data="alert", **{"for": "2m"})
    dial.reading = None
    run(ev, services, T0, 3)
    assert texts(services) == [("alert", "ALERT #1: high_cpu: no data for 2m")]
    dial.reading = 10
    ev.tick(T0 + 600)
    assert texts(services)[-1] == ("recovery", "RESOLVED after 10m: #1 high_cpu now 10")


@pytest.mark.parametrize("before", [99, 10])
def test_no_data_keep_holds_the_last_state_with_its_reminders(services, dial, before):
    ev = evaluator(services, no_data="keep", **{"for": 0})
    dial.reading = before
    ev.tick(T0)
    was = state(services)
    dial.reading = None
    run(ev, services, T0 + 60, 40)
    assert state(services) == was
    kinds = [k for k, _ in texts(services)]
    assert kinds == (["alert", "reminder"] if before == 99 else [])
    if before == 99:
        assert texts(services)[-1][1] == "STILL FIRING 30m: #1 CPU 99% over 80% for 30m"


def test_a_failing_query_keeps_the_state_is_retried_within_two_intervals_and_texts_once_after_5m(
    services, dial
):
    ev = evaluator(services, **{"for": 0, "repeat": 0})
    dial.reading = 99
    ev.tick(T0)
    dial.reading = MonitorError("connection refused")
    evaluated, now = [], T0 + 60
    for _ in range(30):
        before = _evaluated_at(services)
        ev.tick(now)
        if _evaluated_at(services) != before:
            evaluated.append(now)
        now += 60
    assert state(services) == "firing", "an error is no verdict: the alert stays open, nobody hears RESOLVED"
    gaps = {b - a for a, b in zip(evaluated, evaluated[1:], strict=False)}
    assert gaps <= {60.0, 120.0}, "retried at the interval, backing off to two at most"
    notices = [b for k, b in texts(services) if k == "notice"]
    assert notices == [
        "Cannot evaluate rule high_cpu for 5m: connection refused. Retrying every 2m; it cannot alert until "
        "it works again."
    ]
    dial.reading = 10
    for _ in range(3):
        ev.tick(now)
        now += 60
    assert texts(services)[-2:] == [
        ("notice", "Rule high_cpu evaluates again after 31m of errors: now 10."),
        ("recovery", "RESOLVED after 32m: #1 high_cpu now 10"),
    ]


def test_errors_shorter_than_error_notice_after_text_nobody(services, dial):
    ev = evaluator(services, error_notice_after="10m")
    for spell in range(3):
        dial.reading = MonitorError("timeout after 4s")
        now = run(ev, services, T0 + spell * 3600, 9)
        dial.reading = 10
        run(ev, services, now, 3)
    assert texts(services) == []


def test_a_breach_after_a_failing_spell_pages_within_two_intervals(services, dial):
    ev = evaluator(services, **{"for": 0})
    dial.reading = MonitorError("unavailable: too many queries")
    now = run(ev, services, T0, 45)
    dial.reading = 99
    assert ticks_until_paged(ev, services, now) <= 2
    assert [k for k, _ in texts(services)] == ["notice", "notice", "alert"]


def test_one_broken_rule_does_not_stop_the_others(services, dial):
    rules = parse_rules(
        [
            {"name": "broken", "monitor": "dial", "query": "x", "threshold": 1, "recipients": [ADMIN]},
            {
                "name": "fine",
                "monitor": "system",
                "query": "cpu",
                "op": ">=",
                "threshold": 0,
                "recipients": [ADMIN],
            },
        ],  # fmt: skip
        services.settings,
        services.monitors,
    )
    dial.reading = "not a number"  # a backend bug: _value returned garbage
    alerting.Evaluator(services, rules, "w").tick(T0)
    with services.engine.connect() as conn:
        states = dict(conn.execute(select(alerting.rule_states.c.rule, alerting.rule_states.c.state)).all())
    assert states == {"broken": "ok", "fine": "firing"}
    with services.engine.connect() as conn:
        assert conn.scalar(
            select(alerting.rule_states.c.last_error).where(alerting.rule_states.c.rule == "broken")
        )


def test_a_rule_removed_from_the_file_closes_its_alert_quietly(services, dial):
    dial.reading = 99
    evaluator(services, **{"for": 0}).tick(T0)
    alerting.Evaluator(services, [], "w")
    with services.engine.connect() as conn:
        assert records.firing(conn) == []
        assert conn.execute(select(alerting.rule_states)).all() == []


def _evaluated_at(services):
    with services.engine.connect() as conn:
        return conn.scalar(select(alerting.rule_states.c.evaluated_at))


def now_clock() -> float:
    """Tests that also text commands use the real clock: acks and snoozes are stamped with it."""
    from core import db

    return db.now()


@pytest.mark.parametrize("words", ["ack 1", "snooze 1 2h"])
def test_ack_or_snooze_by_sms_stops_a_rules_reminders(services, dial, client, words):
    ev = evaluator(services, **{"for": 0})
    t = now_clock()
    dial.reading = 95
    ev.tick(t)
    assert Phone(client, RESPONDER).text(words).startswith(("Acked #1", "Snoozed #1"))
    for minutes in (31, 61, 91):
        ev.tick(t + minutes * 60)
    assert [k for k, _ in texts(services)] == ["alert"]


def test_a_snoozed_rule_reminds_when_the_snooze_ends(services, dial, client):
    ev = evaluator(services, **{"for": 0, "repeat": "4h"})
    t = now_clock()
    dial.reading = 95
    ev.tick(t)
    Phone(client, RESPONDER).text("snooze 1 30m")
    ev.tick(t + 29 * 60)
    ev.tick(t + 31 * 60)
    assert [b for _, b in texts(services)][-1] == "STILL FIRING 31m: #1 CPU 95% over 80% for 31m"


def test_a_rule_resolved_by_sms_while_still_breached_stays_closed_until_it_clears(services, dial, client):
    ev = evaluator(services, **{"for": 0})
    t = now_clock()
    dial.reading = 95
    ev.tick(t)
    reply = Phone(client, RESPONDER).text("resolve 1")
    assert reply.startswith("Resolved #1 high_cpu after ")
    assert reply.endswith("Told 1 other. Still breached: it pages again after it clears and breaches anew.")
    for minutes in range(1, 120, 10):
        ev.tick(t + minutes * 60)
    assert [k for k, _ in texts(services)] == ["alert", "recovery"], "no reminder, no new page"
    assert texts(services)[-1][1].startswith("RESOLVED by +1555***0101 after ")
    assert state(services) == "firing"
    dial.reading = 10
    ev.tick(t + 7500)
    assert state(services) == "ok" and len(texts(services)) == 2, "nothing more to say when it clears"
    dial.reading = 99
    ev.tick(t + 7530)
    assert texts(services)[-1] == ("alert", "ALERT #2: CPU 99% over 80% for 0s"), "the next breach is new"


def test_a_recovery_goes_only_to_people_the_page_reached(services, dial):
    ev = evaluator(services, **{"for": 0})
    dial.reading = 95
    ev.tick(T0)
    o = queue.outbox.c
    with services.engine.begin() as conn:
        conn.execute(
            update(queue.outbox).where(o.to_number == RESPONDER).values(status="failed", error_code="21211")
        )
    dial.reading = 10
    ev.tick(T0 + 600)
    assert texts(services)[-1] == ("recovery", "RESOLVED after 10m: #1 high_cpu now 10")
    assert [k for k, _ in texts(services, RESPONDER)] == ["alert"], "never reached: no RESOLVED either"


def test_a_reminder_still_waiting_is_replaced_by_the_next(services, dial):
    ev = evaluator(services, **{"for": 0})
    dial.reading = 95
    ev.tick(T0)
    ev.tick(T0 + 1800)
    ev.tick(T0 + 3600)
    o = queue.outbox.c
    with services.engine.connect() as conn:
        rows = conn.execute(select(o.body, o.status).where(o.kind == "reminder", o.to_number == ADMIN)).all()
    assert [(r.body[:16], r.status) for r in rows] == [
        ("STILL FIRING 30m", "dropped"),
        ("STILL FIRING 1h:", "queued"),
    ]
