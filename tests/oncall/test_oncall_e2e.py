"""On-call teams end to end: the real worker process sends to the Twilio fake; alerts and SMS come in
through the app on the same store. The test controls time by where it puts the rotation's start
and how long the escalation steps wait (seconds), never by waiting for a real week.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from app import create_app
from tests.support.alerts import WEBHOOK_TOKEN, fire
from tests.support.apps import from_file, with_settings
from tests.support.fakes.twilio_api import FakeTwilio
from tests.support.oncall import ALICE, BOB, CAROL, DAVE, payments_and_infra
from tests.support.phones import Phone
from tests.support.workers import start_worker, stop_worker, wait_for, worker_env

pytestmark = pytest.mark.slow


def iso(moment: datetime) -> str:
    return moment.replace(microsecond=0).isoformat()


@pytest.fixture
def fake(settings) -> Iterator[FakeTwilio]:
    fake = FakeTwilio(settings.twilio_account_sid, settings.twilio_auth_token).start()
    yield fake
    fake.stop()


class Running:
    """The web app (test client) and a worker process on one store, with one operator.yml."""

    def __init__(self, tmp_path: Path, settings, fake: FakeTwilio, file: dict):
        path = tmp_path / "operator.yml"
        path.write_text(yaml.safe_dump(file))
        self.fake = fake
        self.app = create_app(with_settings(settings, alertmanager_token=WEBHOOK_TOKEN, **from_file(path)))
        self.client = self.app.test_client()
        env = worker_env(
            tmp_path, fake, settings.database_url, OPERATOR_CONFIG=str(path), LOG_DIR=str(tmp_path / "logs")
        )
        self.worker = start_worker(tmp_path, env)

    def texts(self, pattern: str, to: str | None = None) -> list:
        with self.fake.lock:
            messages = list(self.fake.messages)
        return [m for m in messages if (to is None or m.to == to) and re.search(pattern, m.body)]

    def wait(self, pattern: str, to: str, what: str):
        return wait_for(lambda: self.texts(pattern, to), what)[0]

    def close(self) -> None:
        assert stop_worker(self.worker) == 0
        self.app.extensions["operator"].close()


@pytest.fixture
def running(tmp_path, settings, fake):
    started: list[Running] = []

    def start(file: dict) -> Running:
        started.append(Running(tmp_path, settings, fake, file))
        return started[-1]

    yield start
    for each in started:
        each.close()


def test_a_rotation_hands_over_at_the_right_instant_and_both_people_are_told(running):
    start = datetime.now(UTC) + timedelta(seconds=4)
    run = running(payments_and_infra(start=iso(start), every="1d"))
    # Before the rotation's start the last member's turn runs up to it.
    run.wait(r"^You are on call for payments until ", BOB, "Bob told he is on call")
    incoming = run.wait(r"^You are on call for payments until ", ALICE, "Alice told at the handoff")
    assert incoming.at >= start.replace(microsecond=0).timestamp()
    assert re.fullmatch(
        r"You are on call for payments until \w{3} \d\d:\d\d UTC \(0 open alerts\)", incoming.body
    )
    outgoing = run.wait(r"^Your payments shift is over", BOB, "Bob's summary")
    assert outgoing.body.startswith("Your payments shift is over: Alice is on call until ")
    assert len(run.texts(r"^You are on call", ALICE)) == 1


def test_a_payments_alert_reaches_only_the_payments_on_call_and_escalates_to_step_two_without_an_ack(running):
    hour_ago = datetime.now(UTC) - timedelta(hours=1)
    steps = {"steps": [{"after": 0, "notify": "oncall"}, {"after": "3s", "notify": "next"}]}
    run = running(payments_and_infra(start=iso(hour_ago), escalation=steps))
    payments = fire(run.client, "CardDeclines", labels={"team": "payments"})
    disk = fire(run.client, "DiskFull")
    run.wait(rf"FIRING CardDeclines .*#{payments}", ALICE, "the payments page")
    wait_for(lambda: run.texts(rf"FIRING DiskFull .*#{disk}"), "the default team's page")
    escalated = run.wait(rf"^ESCALATED \d+s unacked: FIRING CardDeclines .*#{payments}", BOB, "step two")
    assert escalated.to == BOB
    paged = {
        m.to for m in run.texts(rf"FIRING CardDeclines .*#{payments}") if not m.body.startswith("ESCALATED")
    }
    assert paged == {ALICE}
    assert {m.to for m in run.texts(rf"DiskFull .*#{disk}")} <= {CAROL, DAVE}


def test_an_acked_alert_does_not_escalate(running):
    hour_ago = datetime.now(UTC) - timedelta(hours=1)
    steps = {
        "steps": [
            {"after": 0, "notify": "oncall"},
            {"after": "2s", "notify": "next"},
            {"after": "4s", "notify": "team"},
        ]
    }
    run = running(payments_and_infra(start=iso(hour_ago), escalation=steps))
    first = fire(run.client, "CardDeclines", labels={"team": "payments"})
    assert Phone(run.client, ALICE).text(f"ack {first}").startswith(f"Acked #{first}")
    second = fire(run.client, "QueueStuck", labels={"team": "payments"})
    # The other alert's last step is at 4s: by then the acked one would have had both of its own.
    wait_for(lambda: len(run.texts(rf"^ESCALATED .*#{second}")) >= 3, "the other alert's steps")
    assert run.texts(rf"^ESCALATED .*#{first}") == []


def test_an_override_by_sms_changes_who_is_paged_next(running):
    hour_ago = datetime.now(UTC) - timedelta(hours=1)
    run = running(payments_and_infra(start=iso(hour_ago)))
    run.wait(r"^You are on call for payments", ALICE, "Alice's shift")
    reply = Phone(run.client, BOB).text("oncall take 2h payments")
    assert reply.startswith("You are on call for payments for 2h, until ")
    run.wait(r"^Your payments shift is over: Bob is on call until ", ALICE, "Alice told Bob covers")
    alert_id = fire(run.client, "CardDeclines", labels={"team": "payments"})
    run.wait(rf"FIRING CardDeclines .*#{alert_id}", BOB, "the page to Bob")
    assert run.texts(rf"FIRING CardDeclines .*#{alert_id}", ALICE) == []
