"""Rule evaluation: ok -> pending -> firing -> resolved, reminders, flapping, no data, restarts."""

from __future__ import annotations

import pytest
from sqlalchemy import select

import alert_store
import alerting
import sms
from monitors import BaseMonitor, MonitorError
from rules import parse_rules
from tests.conftest import ADMIN, RESPONDER

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
    o = sms.outbox.c
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
        alert = alert_store.get(conn, 1)
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
    o = sms.outbox.c
    with services.engine.connect() as conn:
        dropped = conn.scalar(select(o.id).where(o.status == "dropped").limit(1))
        alerts = conn.execute(select(alert_store.alerts)).all()
    assert dropped is not None
    assert len(alerts) == 1, "flips within RECOVERY_DELAY reopen the same incident"


def test_a_recovery_notice_waits_for_the_recovery_delay(services, dial):
    ev = evaluator(services, **{"for": 0})
    dial.reading = 90
    ev.tick(T0)
    dial.reading = 10
    ev.tick(T0 + 60)
    o = sms.outbox.c
    with services.engine.connect() as conn:
        not_before = conn.scalar(select(o.not_before).where(o.kind == "recovery"))
    assert not_before == T0 + 60 + services.settings.recovery_delay


def test_a_failing_query_backs_off_and_sends_one_cannot_evaluate_notice(services, dial):
    ev = evaluator(services, **{"for": 0})
    dial.reading = MonitorError("connection refused")
    now = T0
    evaluated = []
    for _ in range(40):
        before = _evaluated_at(services)
        ev.tick(now)
        if _evaluated_at(services) != before:
            evaluated.append(now - T0)
        now += services.settings.alert_interval
    assert state(services) == "nodata"
    notices = [b for k, b in texts(services) if k == "notice"]
    assert notices == [
        "Cannot evaluate rule high_cpu: connection refused. Retrying every 4m or so; it cannot alert until then."
    ]
    gaps = [b - a for a, b in zip(evaluated, evaluated[1:], strict=False)]
    assert gaps[:4] == [60, 120, 240, 480], "each failure doubles the wait"
    dial.reading = 99
    for _ in range(20):
        ev.tick(now)
        now += 60
    assert state(services) == "firing"


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
    assert states == {"broken": "nodata", "fine": "firing"}


def test_a_rule_removed_from_the_file_closes_its_alert_quietly(services, dial):
    dial.reading = 99
    evaluator(services, **{"for": 0}).tick(T0)
    alerting.Evaluator(services, [], "w")
    with services.engine.connect() as conn:
        assert alert_store.firing(conn) == []
        assert conn.execute(select(alerting.rule_states)).all() == []


def _evaluated_at(services):
    with services.engine.connect() as conn:
        return conn.scalar(select(alerting.rule_states.c.evaluated_at))
