"""Evaluating alert rules: ok -> pending -> firing -> resolved, persisted in `rule_states`.

Every evaluation reads and writes its rule's row, the alert record and the texts it causes in one
transaction, so a restart neither re-pages nor forgets a firing alert. As in Prometheus, an empty
result means "not breached" unless the rule's `no_data` says otherwise, and a query that fails
leaves the rule's state as it was: it is retried every interval or two, and only errors that
persist for `error_notice_after` send one "cannot evaluate" notice (and one when it works again).
"""

from __future__ import annotations

import logging
import time
from enum import StrEnum
from typing import Any

from sqlalchemy import Column, Connection, Float, Integer, String, Table, Text, delete, select, update

from core import db
from core.timeutil import humanize
from incidents import paging, records
from incidents.records import Alert, Source, Status
from incidents.rules import NoData, Rule, number
from outbox.queue import Kind
from services import Services

logger = logging.getLogger(__name__)


class RuleState(StrEnum):
    OK = "ok"
    PENDING = "pending"
    FIRING = "firing"
    RESOLVED = "resolved"


# A failing query is retried after one interval, then every other one: a breach that follows
# still pages within two intervals, and a hung backend costs the loop half as often.
MAX_BACKOFF_INTERVALS = 2

rule_states = Table(
    "rule_states",
    db.metadata,
    Column("rule", String(64), primary_key=True),
    Column("state", String(16), nullable=False),
    Column("since", Float),  # when the current breach began (pending and firing)
    Column("alert_id", Integer),  # the incident this rule opened last
    Column("value", Float),
    Column("evaluated_at", Float),
    Column("next_eval_at", Float, nullable=False, default=0.0),
    Column("failures", Integer, nullable=False, default=0),
    Column("notice_sent", Integer, nullable=False, default=0),
    Column("last_error", Text),
    Column("evaluated_by", String(64)),
    Column("error_since", Float),  # the first of the failures in a row, None while it evaluates
)


def reading(value: float | None) -> str:
    """A value as texts show it; an empty result is "empty"."""
    return "empty" if value is None else number(value)


def is_firing(conn: Connection, rule: str) -> bool:
    """Whether the rule's last evaluation found it breached (it stays so after a manual resolve)."""
    t = rule_states.c
    return conn.execute(select(t.state).where(t.rule == rule)).scalar() == RuleState.FIRING


def states(conn: Connection) -> list[tuple[str, str]]:
    """(rule, state) of every rule evaluated so far, for /metrics."""
    t = rule_states.c
    return [(r.rule, r.state) for r in conn.execute(select(t.rule, t.state))]


class Evaluator:
    """Evaluates every rule once per tick; run by exactly one worker (see leader.py)."""

    def __init__(self, services: Services, rules: list[Rule] | None, worker_id: str = ""):
        self.services, self.worker_id = services, worker_id
        self.settings, self.engine = services.settings, services.engine
        self.rules: list[Rule] = []
        self.use(rules)

    def use(self, rules: list[Rule] | None) -> None:
        """Evaluate `rules` from now on; None (no good rules known yet) evaluates none, forgets none."""
        if rules is not None:
            self.rules = list(rules)
            self.forget_removed_rules()

    def tick(self, now: float | None = None) -> None:
        """Evaluate each due rule; a failure is that rule's problem, never the loop's.

        Except the store going away (monitors answer their own failures as results): every rule
        would fail the same way, so the tick ends and the worker waits for the store.
        """
        now = time.time() if now is None else now
        for rule in self.rules:
            try:
                self.evaluate(rule, now)
            except db.UNREACHABLE:
                raise
            except Exception:
                logger.exception("rule %s: evaluation failed", rule.name)
                try:
                    self._failed(rule, "internal error, see logs", now)
                except Exception:  # noqa: BLE001 - the store itself may be down; try next tick
                    logger.exception("rule %s: could not record the failure", rule.name)

    def evaluate(self, rule: Rule, now: float) -> None:
        with self.engine.connect() as conn:
            state = self._state(conn, rule)
        if state["error_since"] is not None and state["next_eval_at"] > now + 0.01:
            return  # a failing query, retried every other interval
        result = self.services.monitors[rule.monitor].value(rule.query)
        if result.ok:
            value = result.data.get("value")
            self._apply(rule, None if value is None else float(value), now)
        else:
            self._failed(rule, result.error or "no answer", now)

    def _state(self, conn: Connection, rule: Rule) -> dict[str, Any]:
        row = conn.execute(select(rule_states).where(rule_states.c.rule == rule.name)).first()
        if row is None:
            return {"rule": rule.name, "state": RuleState.OK, "since": None, "alert_id": None, "value": None,
                    "next_eval_at": 0.0, "failures": 0, "notice_sent": 0, "error_since": None}  # fmt: skip
        return dict(row._mapping)

    def _save(self, conn: Connection, rule: Rule, **values: Any) -> None:
        values.update(evaluated_by=self.worker_id)
        updated = conn.execute(update(rule_states).where(rule_states.c.rule == rule.name).values(**values))
        if not updated.rowcount:
            conn.execute(rule_states.insert().values(rule=rule.name, **{"state": RuleState.OK, **values}))

    def _apply(self, rule: Rule, value: float | None, now: float) -> None:
        """One answer: a number, or None for an empty result (whose meaning the rule's no_data says)."""
        with self.engine.begin() as conn:
            state = self._state(conn, rule)
            current, since, alert_id = state["state"], state["since"], state["alert_id"]
            alert = records.get(conn, alert_id) if alert_id else None
            if state["error_since"] is not None:
                self._works_again(conn, rule, state, value, now)
            # The worker evaluates every rule each ALERT_INTERVAL (worker.loop): that is the next one.
            common = dict(value=value, evaluated_at=now, next_eval_at=now + self.settings.alert_interval,
                          failures=0, notice_sent=0, last_error=None, error_since=None)  # fmt: skip
            if value is None and rule.no_data == NoData.KEEP:
                self._hold(conn, rule, state, alert, now)
                self._save(conn, rule, **{**common, "value": state["value"]})
                return
            breached = rule.no_data == NoData.ALERT if value is None else rule.breached(value)
            if not breached:
                if current == RuleState.FIRING and alert and alert.status == Status.FIRING:
                    self._resolve(conn, rule, alert, value, now)
                    self._save(conn, rule, state=RuleState.RESOLVED, since=None, **common)
                else:
                    self._save(conn, rule, state=RuleState.OK, since=None, **common)
                return
            if current == RuleState.FIRING and alert and alert.status == Status.FIRING:
                self._remind(conn, rule, alert, value, now)
                self._save(conn, rule, state=RuleState.FIRING, **common)
                return
            if current == RuleState.FIRING and alert:
                # Closed by hand (`resolve 7`) while still breached: it stays closed, with no
                # reminders, until the rule goes ok; the next breach after that is a new incident.
                self._save(conn, rule, state=RuleState.FIRING, **common)
                return
            since = since if current == RuleState.PENDING and since else now
            if now - since < rule.for_:
                self._save(conn, rule, state=RuleState.PENDING, since=since, **common)
                return
            alert = self._fire(conn, rule, value, since, now)
            self._save(conn, rule, state=RuleState.FIRING, since=since, alert_id=alert.id, **common)

    def _hold(
        self, conn: Connection, rule: Rule, state: dict[str, Any], alert: Alert | None, now: float
    ) -> None:
        """No verdict this time (a failed query, or an empty one under `no_data: keep`): no change.

        A firing alert stays firing and keeps its reminders, with the last value known.
        """
        if state["state"] == RuleState.FIRING and alert and alert.status == Status.FIRING:
            self._remind(conn, rule, alert, state["value"], now)

    def _fire(self, conn: Connection, rule: Rule, value: float | None, since: float, now: float) -> Alert:
        text = rule.render(value, humanize(now - since))
        reopened = records.reopen_flapping(conn, Source.RULE, rule.name, now, self.settings.recovery_delay)
        if reopened is not None:
            # Back before its recovery notice went out: the same incident, not a new page.
            records.set_fields(conn, reopened.id, summary=text)
            logger.info("rule %s flapped back to firing before its RESOLVED went out: #%d reopened",
                        rule.name, reopened.id)  # fmt: skip
            return reopened
        labels = {"monitor": rule.monitor, "query": rule.query, **({"team": rule.team} if rule.team else {})}
        alert, opened = records.fire(conn, Source.RULE, rule.name, rule.name, summary=text,
                                         severity=rule.severity, labels=labels, started_at=since)  # fmt: skip
        if opened:
            numbers = self._recipients(conn, rule, alert, now)
            paging.page(conn, alert, f"ALERT #{alert.id}: {text}", numbers, self.settings, now)
            logger.warning("rule %s firing: alert #%d (%s %s %s)", rule.name, alert.id, reading(value),
                           rule.op, number(rule.threshold))  # fmt: skip
        return alert

    def _remind(self, conn: Connection, rule: Rule, alert: Alert, value: float | None, now: float) -> None:
        records.seen(conn, alert.id, now)
        if not paging.reminder_due(alert, rule.repeat, now):
            return
        age = humanize(now - alert.started_at)
        text = f"STILL FIRING {age}: #{alert.id} {rule.render(value, age)}"
        paging.remind(conn, alert, text, self._recipients(conn, rule, alert, now), self.settings, now)

    def _recipients(self, conn: Connection, rule: Rule, alert: Alert, now: float) -> list[str]:
        """The rule's own recipients, else who its team (or the default team) has on call."""
        return list(rule.recipients) or paging.route(conn, alert, self.settings, now).numbers

    def _resolve(self, conn: Connection, rule: Rule, alert: Alert, value: float | None, now: float) -> None:
        closed = records.close(conn, alert.id, at=now)
        age = humanize(now - alert.started_at)
        text = f"RESOLVED after {age}: #{alert.id} {rule.name} now {reading(value)}"
        paging.send_recovery(conn, closed, self.settings, text=text, now=now)
        logger.info("rule %s resolved: alert #%d after %s", rule.name, alert.id, age)

    def _failed(self, rule: Rule, error: str, now: float) -> None:
        """The query failed: the state stands, retried soon; one notice once errors persist."""
        interval = self.settings.alert_interval
        with self.engine.begin() as conn:
            state = self._state(conn, rule)
            failures = state["failures"] + 1
            since = now if state["error_since"] is None else state["error_since"]
            delay = interval * min(failures, MAX_BACKOFF_INTERVALS)
            notice = not state["notice_sent"] and now - since >= rule.error_notice_after
            if notice:
                paging.notify(conn, rule.recipients or self.settings.pager_numbers, f"Cannot evaluate rule {rule.name} for {humanize(now - since)}: "
                              f"{error}. Retrying every {humanize(delay)}; it cannot alert until it works "
                              "again.", Kind.NOTICE, self.settings)  # fmt: skip
            alert = records.get(conn, state["alert_id"]) if state["alert_id"] else None
            self._hold(conn, rule, state, alert, now)
            self._save(conn, rule, state=state["state"], evaluated_at=now, next_eval_at=now + delay,
                       failures=failures, notice_sent=1 if notice else state["notice_sent"],
                       last_error=error[:500], error_since=since)  # fmt: skip
        logger.warning("rule %s: cannot evaluate (%s), failure %d since %s, next try in %.0fs", rule.name,
                       error, failures, humanize(now - since), delay)  # fmt: skip

    def _works_again(self, conn: Connection, rule: Rule, state: dict[str, Any], value: float | None,
                     now: float) -> None:  # fmt: skip
        lasted = humanize(now - state["error_since"])
        logger.info("rule %s evaluates again after %s of errors", rule.name, lasted)
        if state["notice_sent"]:
            paging.notify(conn, rule.recipients or self.settings.pager_numbers, f"Rule {rule.name} evaluates again after {lasted} of errors: "
                          f"now {reading(value)}.", Kind.NOTICE, self.settings)  # fmt: skip

    def forget_removed_rules(self) -> None:
        """Rules gone from the file: close their incidents quietly and drop their state."""
        names = [r.name for r in self.rules]
        with self.engine.begin() as conn:
            for alert in records.firing(conn):
                if alert.source == Source.RULE and alert.key not in names:
                    logger.info("rule %s was removed: closing alert #%d", alert.key, alert.id)
                    records.close(conn, alert.id)
            conn.execute(delete(rule_states).where(rule_states.c.rule.not_in(names)))


def rule_rows(conn: Connection) -> list[Any]:
    """Every evaluated rule's stored state, by name."""
    t = rule_states.c
    return list(
        conn.execute(
            select(
                t.rule,
                t.state,
                t.since,
                t.alert_id,
                t.value,
                t.evaluated_at,
                t.next_eval_at,
                t.failures,
                t.last_error,
                t.error_since,
            ).order_by(t.rule)  # fmt: skip
        )
    )


def closed_while_breached(conn: Connection) -> dict[str, int]:
    """Rules still breaching whose alert someone resolved by hand: rule -> that alert's id.

    Such a rule stays firing without reminders until it goes ok (see `_apply`).
    """
    t, a = rule_states.c, records.alerts.c
    rows = conn.execute(
        select(t.rule, t.alert_id)
        .join(records.alerts, a.id == t.alert_id)
        .where(t.state == RuleState.FIRING, a.status != Status.FIRING)
    )
    return {r.rule: r.alert_id for r in rows}
