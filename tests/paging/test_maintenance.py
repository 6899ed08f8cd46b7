"""Maintenance windows from a signed SMS: alerts inside one are stored and listed, not paged, and
the held page goes out when the window ends while the alert still fires."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

import alerting
from core import db
from incidents import escalation, maintenance, paging, records, reminders
from incidents.rules import parse_rules
from monitors import BaseMonitor
from outbox.queue import outbox
from tests.support.alerts import WEBHOOK_TOKEN, age, deliver, fire_datadog
from tests.support.apps import app_with, with_settings
from tests.support.phones import ADMIN, RESPONDER, VIEWER, Phone
from tests.support.servers import fresh_postgres_database

# When a window ends, as replies give it (the tests run with the default TIMEZONE, UTC).
UNTIL = r"until (\w{3} )?\d\d:\d\d UTC"

BOSS = "+15555550170"


@pytest.fixture
def settings(settings):
    return with_settings(
        settings,
        alertmanager_token=WEBHOOK_TOKEN,
        datadog_token=WEBHOOK_TOKEN,
        rate_limit="1000 per minute",
        escalate_after=900.0,
        escalation_numbers=(BOSS,),
    )


@pytest.fixture
def responder(client) -> Phone:
    return Phone(client, RESPONDER)


def fire(client, name: str, hosts: tuple[str, ...] = ("web-1",), summary: str = "") -> int:
    """One Alertmanager notification for a group; commonLabels as Alertmanager computes them."""
    alerts = [
        {
            "status": "firing",
            "labels": {"alertname": name, "instance": f"{host}:9100", "job": "node", "severity": "page"},
            "annotations": {"summary": summary},
            "startsAt": "2026-01-01T00:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "fingerprint": f"{name}-{host}",
        }
        for host in hosts
    ]
    common = {k: v for k, v in alerts[0]["labels"].items() if all(a["labels"].get(k) == v for a in alerts)}
    body = {
        "version": "4",
        "groupKey": f'{{}}:{{alertname="{name}"}}',
        "status": "firing",
        "truncatedAlerts": 0,
        "groupLabels": {"alertname": name},
        "commonLabels": common,
        "commonAnnotations": {"summary": summary},
        "alerts": alerts,
    }
    response = client.post(
        "/webhook/alertmanager", json=body, headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}"}
    )
    assert response.status_code == 200, response.json
    return response.json["alerts"][0]


def texts(services, alert_id: int | None = None, kind: str | None = None) -> list:
    """Outbound texts about alerts (replies excluded), oldest first."""
    o = outbox.c
    query = select(outbox).where(o.kind != "reply").order_by(o.id)
    if alert_id is not None:
        query = query.where(o.alert_id == alert_id)
    if kind is not None:
        query = query.where(o.kind == kind)
    with services.engine.connect() as conn:
        return conn.execute(query).all()


def windows(services) -> list[maintenance.Window]:
    with services.engine.connect() as conn:
        return maintenance.active(conn, db.now())


def run_out(services, window_id: int, seconds_ago: float = 1.0) -> None:
    """Let time pass until the window is over, as if its end had come by itself."""
    with services.engine.begin() as conn:
        maintenance.set_end(conn, window_id, db.now() - seconds_ago)


def window_id(reply: str) -> int:
    match = re.match(r"Maintenance #(\d+) ", reply)
    assert match, reply
    return int(match.group(1))


# --- starting and listing ------------------------------------------------------------------


def test_maintenance_alone_says_there_is_none_and_how_to_start_one(phone):
    assert phone.text("maintenance") == (
        "No maintenance windows. Start one: e.g. 'maintenance 2h', 'maintenance 2h HighCPU' or "
        "'maintenance 2h instance=db-1'."
    )


def test_a_window_is_listed_with_who_set_it_and_when_it_ends(phone, responder, services):
    assert re.fullmatch(
        rf"Maintenance #1 for 2h, {UNTIL}: HighCPU alerts are stored, not paged. 'maintenance off' ends it.",
        phone.text("maintenance 2h HighCPU"),
    )
    assert re.match(
        rf"Maintenance #2 for 30m, {UNTIL}: instance=db-1 ", responder.text("maintenance 30m instance=db-1")
    )
    assert phone.text("maintenance") == (
        "2 maintenance windows:\n#1 HighCPU by you, 1h59m left\n#2 instance=db-1 by +1555***0101, 29m left\n"
        "'maintenance off [n|all]' ends them."
    )


def test_a_window_for_everything_says_that_alerts_are_still_listed(phone):
    assert re.fullmatch(
        rf"Maintenance #1 for 2h, {UNTIL}: no alert pages \(ALERTS lists them\). 'maintenance off' ends it.",
        phone.text("maintenance 2h"),
    )


@pytest.mark.parametrize(
    "words, scope, seconds",
    [
        ("maintenance 2h", "everything", 7200),
        ("maintenance for 2 hours", "everything", 7200),
        ("Maintenance 2h HighCPU", "HighCPU", 7200),
        ("maint 90 min HighCPU", "HighCPU", 5400),
        ("maintenance for an hour and a half alertname=DiskFull", "DiskFull", 5400),
        ("put instance=db-1 in maintenance for 2 hours", "instance=db-1", 7200),
        ('maintenance 2h instance = "db-1:9100"', "instance=db-1:9100", 7200),
        ("downtime 1h env:prod", "env=prod", 3600),
        ("maintenence 30m", "everything", 1800),
        ("start maintenance window 45m for everything", "everything", 2700),
        ("maintenance 30", "everything", 1800),
        ("maintenance 1h30m severity=warning", "severity=warning", 5400),
    ],
)
def test_windows_are_understood_however_they_are_typed(phone, services, words, scope, seconds):
    assert phone.text(words).startswith("Maintenance #1 for ")
    [window] = windows(services)
    assert window.scope == scope
    assert window.ends_at - window.created_at == pytest.approx(seconds)
    assert window.created_by == phone.number


@pytest.mark.parametrize(
    "words, reply",
    [
        ("maintenance -5m", "A window cannot be negative; use e.g. 30m or 2h."),
        ("maintenance 0m", "'0m' is no length of time; use e.g. 30m or 2h."),
        ("maintenance 8d", "At most 7d for maintenance."),
        ("maintenance 99999999999999999999h", "At most 7d for maintenance."),
        ("maintenance until 5pm", "'5pm' is not a length of time (e.g. 30m, 2h); for an alert of that name use alertname=5pm."),
        ("maintenance 1e309", "'1e309' is not a length of time (e.g. 30m, 2h); for an alert of that name use alertname=1e309."),
        ("maintenance 2h instance!=db-1", "Windows match exactly: label=value, e.g. instance=db-1 (no != or =~)."),
        ("maintenance 2h instance=~db.*", "Windows match exactly: label=value, e.g. instance=db-1 (no != or =~)."),
        ("maintenance 2h HighCPU DiskFull", "One alertname or label=value per window; e.g. 'maintenance 2h', 'maintenance 2h HighCPU' or 'maintenance 2h instance=db-1'."),
        ("maintenance 2h instance=", "'instance=' is no label=value; e.g. 'maintenance 2h', 'maintenance 2h HighCPU' or 'maintenance 2h instance=db-1'."),
        ("maintenance HighCPU", "How long? e.g. 'maintenance 2h HighCPU' (at most 7d)."),
        ("maintenance 2h instance=" + "x" * 300, "That value is too long for a window (at most 200 characters)."),
        ("maintenance off 123456789012345678901", "No maintenance #123456789012... Text MAINTENANCE for the windows on."),
        ("maintenance 12 30m", "Windows take a length and one scope; e.g. 'maintenance 2h', 'maintenance 2h HighCPU' or 'maintenance 2h instance=db-1'."),
    ],
)  # fmt: skip
def test_a_window_that_cannot_be_used_is_refused_with_the_reason(phone, services, words, reply):
    assert phone.text(words) == reply
    assert windows(services) == []


def test_a_host_typed_as_an_alertname_gets_a_hint(phone):
    reply = phone.text("maintenance 2h db-1")
    assert reply.endswith(" No alert is named db-1; for a host: instance=db-1.")


def test_the_same_scope_again_moves_the_end_instead_of_stacking_windows(phone, responder, services):
    phone.text("maintenance 30m HighCPU")
    assert re.fullmatch(
        rf"Maintenance #1 \(HighCPU\) now ends in 2h, {UNTIL} \(was 29m left\)\.",
        responder.text("maintenance 2h highcpu"),
    )
    [window] = windows(services)
    assert window.ends_at - db.now() == pytest.approx(7200, abs=5)


def test_viewers_may_list_windows_but_not_start_or_end_them(client, phone, services):
    viewer = Phone(client, VIEWER)
    refused = "Starting or ending maintenance needs the responder role; you are viewer."
    assert viewer.text("maintenance 2h") == refused
    assert windows(services) == []
    phone.text("maintenance 2h")
    assert viewer.text("maintenance off") == refused
    assert viewer.text("maintenance").startswith("1 maintenance window:\n#1 everything by +1555***0100, ")
    assert len(windows(services)) == 1


def test_every_gunicorn_worker_sees_the_same_windows(settings, phone):
    phone.text("maintenance 2h HighCPU")
    with app_with(settings) as other:  # another process on the same store
        assert Phone(other.test_client()).text("maintenance").startswith("1 maintenance window:\n#1 HighCPU ")


def test_help_knows_maintenance(phone):
    assert "maintenance" in phone.text("help")
    assert phone.text("help maintenance") == (
        "maintenance [2h] [alertname|label=value] | off [n|all]: hold pages during planned work; alone: list."
    )
    assert phone.text("how do I start maintenance?").startswith("No maintenance windows. Start one: ")


# --- what a window holds -------------------------------------------------------------------


def test_an_alert_inside_a_window_is_stored_and_listed_but_not_paged(phone, client, services):
    phone.text("maintenance 2h HighCPU")
    held = fire(client, "HighCPU", ("web-1", "web-2"), summary="CPU above 90%")
    other = fire(client, "DiskFull", ("db-1",))
    assert texts(services, held) == []
    assert [t.to_number for t in texts(services, other)] == [ADMIN, RESPONDER]
    reply = phone.text("alerts")
    assert re.fullmatch(
        rf"2 open:\n#{other} DiskFull db-1 \S+\n#{held} HighCPU web-1,web-2 \S+ \(maintenance\)", reply
    )
    assert "in maintenance #1 (HighCPU), not paged for 1h59m." in phone.text(f"alerts {held}")
    assert phone.text("maintenance").startswith(
        "1 maintenance window:\n#1 HighCPU by you, 1h59m left, 1 held"
    )


def test_a_label_window_matches_alertmanager_labels_without_the_port_and_datadog_tags(
    phone, client, services
):
    phone.text("maintenance 2h instance=web-1")  # the alert says instance="web-1:9100"
    phone.text("maintenance 2h env:prod")  # Datadog's tags:"env:prod"
    held = fire(client, "HighCPU", ("web-1",))
    paged = fire(client, "NodeDown", ("web-2",))
    tagged = fire_datadog(client)
    assert texts(services, held) == [] and texts(services, tagged) == []
    assert len(texts(services, paged)) == 2


def test_a_group_that_grows_beyond_its_window_pages_once_and_not_again_at_the_end(phone, client, services):
    phone.text("maintenance 2h instance=web-1")
    alert_id = fire(client, "HighCPU", ("web-1",))
    assert texts(services, alert_id) == []
    # web-2 joins: the group's common labels no longer name web-1, so the window no longer covers it.
    assert fire(client, "HighCPU", ("web-1", "web-2")) == alert_id
    assert [t.body for t in texts(services, alert_id)] == [f"FIRING 2 HighCPU web-1,web-2 #{alert_id}"] * 2
    assert phone.text("maintenance off") == "Ended maintenance #1 (instance=web-1)."
    assert len(texts(services, alert_id)) == 2


def test_a_window_that_ends_while_the_alert_still_fires_pages_it_then(app, phone, client, services):
    reply = phone.text("maintenance 1h HighCPU")
    alert_id = fire(client, "HighCPU", ("web-1",), summary="CPU above 90%")
    assert paging.release_ended_windows(services) == 0  # still inside the window
    run_out(services, window_id(reply))
    assert paging.release_ended_windows(services) == 1
    pages = texts(services, alert_id)
    assert [(t.kind, t.to_number, t.body) for t in pages] == [
        ("alert", n, f"FIRING HighCPU web-1 #{alert_id}: CPU above 90%") for n in (ADMIN, RESPONDER)
    ]
    assert paging.release_ended_windows(services) == 0, "a held page goes out once"
    assert phone.text("maintenance").startswith("No maintenance windows.")
    deliver(app)
    assert phone.text("ack").startswith(f"Acked #{alert_id} HighCPU"), (
        "the released page is what a bare ack means"
    )


def test_maintenance_off_ends_the_window_and_pages_what_it_held_at_once(phone, client, services):
    phone.text("maintenance 2h")
    first = fire(client, "HighCPU")
    second = fire(client, "DiskFull", ("db-1",))
    assert phone.text("maintenance off") == (
        f"Ended maintenance #1 (everything). Paging now: #{first} HighCPU, #{second} DiskFull."
    )
    assert len(texts(services, first)) == len(texts(services, second)) == 2
    assert windows(services) == []


def test_an_alert_still_covered_by_another_window_stays_held(phone, responder, client, services):
    phone.text("maintenance 2h")
    responder.text("maintenance 4h HighCPU")
    alert_id = fire(client, "HighCPU")
    assert (
        phone.text("maintenance off")
        == "Ended maintenance #1 (everything). Still on: #2 HighCPU (3h59m left)."
    )
    assert texts(services, alert_id) == []
    assert responder.text("maintenance off").startswith("Ended maintenance #2 (HighCPU). Paging now: ")
    assert len(texts(services, alert_id)) == 2


def test_an_alert_resolved_or_acked_inside_the_window_pages_nobody_at_its_end(phone, client, services):
    phone.text("maintenance 2h")
    fixed = fire(client, "HighCPU")
    taken = fire(client, "DiskFull", ("db-1",))
    phone.text(f"resolve {fixed}")
    phone.text(f"ack {taken}")
    assert phone.text("maintenance off") == "Ended maintenance #1 (everything)."
    assert texts(services) == [], "no page, and no RESOLVED for an alert nobody heard of"


def test_reminders_and_escalation_wait_for_the_window_and_escalation_counts_from_the_page(
    phone, client, services
):
    reply = phone.text("maintenance 1h HighCPU")
    alert_id = fire(client, "HighCPU")
    age(services, alert_id, opened_at=6 * 3600, started_at=6 * 3600)
    assert reminders.run(services) == 0
    assert escalation.run(services) == 0
    run_out(services, window_id(reply))
    assert paging.release_ended_windows(services) == 1
    assert escalation.run(services) == 0, "the page just went out: the escalation clock starts now"
    assert reminders.run(services) == 0
    age(services, alert_id, opened_at=1000)
    assert escalation.run(services) == 1
    assert [t.kind for t in texts(services, alert_id)] == ["alert", "alert", "escalation"]


def test_a_window_started_after_the_page_holds_its_reminders(phone, client, services):
    alert_id = fire(client, "HighCPU")
    phone.text("maintenance 2h HighCPU")
    age(services, alert_id, last_notified_at=5 * 3600, opened_at=5 * 3600)
    assert reminders.run(services) == 0
    assert escalation.run(services) == 0
    phone.text("maintenance off")
    assert reminders.run(services) == 1
    assert [t.kind for t in texts(services, alert_id)] == ["alert", "alert", "reminder", "reminder"]


# --- ending windows ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "words",
    ["maintenance off", "end maintenance", "maintenance is over", "stop maintenance", "cancel maintenance",
     "maintenance done", "we're done with maintenance", "MAINTENANCE OFF!"],
)  # fmt: skip
def test_maintenance_off_is_understood_however_it_is_typed(phone, services, words):
    phone.text("maintenance 2h")
    assert phone.text(words) == "Ended maintenance #1 (everything)."
    assert windows(services) == []


def test_maintenance_off_ends_only_your_windows_and_names_the_others(phone, responder, services):
    phone.text("maintenance 2h HighCPU")
    responder.text("maintenance 1h instance=db-1")
    assert (
        responder.text("maintenance off")
        == "Ended maintenance #2 (instance=db-1). Still on: #1 HighCPU (1h59m left)."
    )
    assert [w.id for w in windows(services)] == [1]


def test_maintenance_off_ends_a_colleagues_window_when_it_is_the_only_one(phone, responder, services):
    phone.text("maintenance 2h HighCPU")
    assert responder.text("maintenance off") == "Ended maintenance #1 (HighCPU)."
    with services.engine.connect() as conn:
        assert maintenance.get_window(conn, 1).ended_by == RESPONDER


def test_maintenance_off_asks_which_when_several_colleagues_windows_are_on(
    phone, client, responder, services
):
    phone.text("maintenance 2h HighCPU")
    phone.text("maintenance 1h instance=db-1")
    assert responder.text("maintenance off") == (
        "You started none of the 2 windows on: #1 HighCPU (1h59m left); #2 instance=db-1 (59m left). "
        "Text 'maintenance off 1' or 'maintenance off all'."
    )
    assert len(windows(services)) == 2
    assert (
        responder.text("maintenance off 2")
        == "Ended maintenance #2 (instance=db-1). Still on: #1 HighCPU (1h59m left)."
    )
    assert responder.text("end maintenance #1") == "Ended maintenance #1 (HighCPU)."


@pytest.mark.parametrize(
    "words", ["maintenance off all", "end all maintenance", "maintenance off everything"]
)
def test_maintenance_off_all_ends_every_window(phone, responder, services, words):
    phone.text("maintenance 2h HighCPU")
    phone.text("maintenance 1h instance=db-1")
    assert responder.text(words) == "Ended maintenance #1 (HighCPU), #2 (instance=db-1)."
    assert windows(services) == []


def test_maintenance_off_with_a_scope_ends_the_window_for_it(phone, responder, services):
    phone.text("maintenance 2h HighCPU")
    phone.text("maintenance 1h instance=db-1")
    assert (
        responder.text("maintenance off instance=DB-1")
        == "Ended maintenance #2 (instance=db-1). Still on: #1 HighCPU (1h59m left)."
    )


@pytest.mark.parametrize(
    "words, reply",
    [
        ("maintenance off 9", "No maintenance #9 is on. On: #1 HighCPU (1h59m left)."),
        ("maintenance off DiskFull", "No maintenance for DiskFull is on. On: #1 HighCPU (1h59m left)."),
    ],
)
def test_ending_a_window_that_is_not_on_says_which_are(phone, services, words, reply):
    phone.text("maintenance 2h HighCPU")
    assert phone.text(words) == reply
    assert len(windows(services)) == 1


def test_maintenance_off_with_nothing_on_says_so(phone):
    assert phone.text("maintenance off") == "No maintenance window is on."


# --- rules ---------------------------------------------------------------------------------


class Dial(BaseMonitor):
    """A monitor whose reading the test sets."""

    name = "dial"

    def __init__(self):
        super().__init__(timeout=2)
        self.reading = 0.0

    def _check(self) -> str:
        return "ok"

    def _value(self, query: str) -> float | None:
        return self.reading


def test_a_rule_breached_inside_a_window_pages_its_own_recipients_when_the_window_ends(phone, services):
    services.monitors["dial"] = Dial()
    rules = parse_rules(
        [{"name": "high_cpu", "monitor": "dial", "query": "cpu", "op": ">", "threshold": 80, "repeat": "30m",
          "recipients": [RESPONDER], "message": "CPU {value}%"}],
        services.settings,
        services.monitors,
    )  # fmt: skip
    evaluator = alerting.Evaluator(services, rules, "test-worker")
    reply = phone.text("maintenance 2h monitor=dial")  # a rule's labels: monitor and query
    services.monitors["dial"].reading = 95
    now = db.now()
    evaluator.tick(now)
    evaluator.tick(now + 3600)  # a reminder would be due: the window holds it too
    assert texts(services) == []
    with services.engine.connect() as conn:
        [alert] = records.firing(conn)
    run_out(services, window_id(reply))
    assert paging.release_ended_windows(services) == 1
    assert [(t.to_number, t.body) for t in texts(services)] == [(RESPONDER, f"ALERT #{alert.id}: CPU 95%")]


# --- PostgreSQL ----------------------------------------------------------------------------


def test_windows_hold_and_release_on_postgresql(settings):
    url, drop = fresh_postgres_database()
    try:
        with app_with(with_settings(settings, database_url=url)) as app:
            client, services = app.test_client(), app.extensions["operator"]
            phone = Phone(client)
            phone.text("maintenance 2h instance=web-1")
            alert_id = fire(client, "HighCPU", ("web-1",))
            assert texts(services, alert_id) == []
            assert "(maintenance)" in phone.text("alerts")
            assert (
                phone.text("maintenance off")
                == f"Ended maintenance #1 (instance=web-1). Paging now: #{alert_id} HighCPU."
            )
            assert len(texts(services, alert_id)) == 2
    finally:
        drop()
