"""Voice calls end to end: gunicorn, real worker processes, the fake Calls API and Twilio's callbacks.

An alert nobody acks is escalated by call (ESCALATION_VIA=call); the worker places the call with
the official Client; the test then plays Twilio: ringing, the answer URL, a keypress, the status.
"""

from __future__ import annotations

import pytest
import requests
from sqlalchemy import select

from core import db
from incidents import records
from outbox import calls, queue
from outbox.calls import Outcome
from tests.support.fakes.twilio_api import FakeTwilio
from tests.support.fakes.twilio_voice import CallPlayer
from tests.support.live_server import gunicorn
from tests.support.phones import RESPONDER, TOKEN
from tests.support.servers import fresh_postgres_database
from tests.support.workers import start_worker, stop_worker, wait_for, worker_env
from voice import routes

pytestmark = pytest.mark.slow
SID = "AC" + "1" * 32


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """(engine, fake Twilio, env, tmp) with gunicorn and one worker running against PostgreSQL."""
    tmp = tmp_path_factory.mktemp("voice")
    database_url, drop = fresh_postgres_database()
    fake = FakeTwilio(SID, TOKEN).start()
    (tmp / "no-rules.yml").write_text("rules: []\n")
    env = worker_env(tmp, fake, database_url, OPERATOR_CONFIG=str(tmp / "no-rules.yml"), ESCALATE_AFTER="1s",
                     ESCALATION_NUMBERS=RESPONDER, ESCALATION_VIA="call", CALL_RATE="50")  # fmt: skip
    with gunicorn(tmp, env, workers=2) as url:
        env["PUBLIC_URL"] = url
        worker = start_worker(tmp, env)
        engine = db.make_engine(database_url)
        try:
            yield engine, fake, env, tmp, url
        finally:
            assert stop_worker(worker) == 0
            engine.dispose()
            fake.stop()
    drop()


def overdue_alert(engine, name: str) -> int:
    """An alert opened two minutes ago that nobody took: the worker escalates it by call."""
    with engine.begin() as conn:
        alert, _ = records.fire(conn, "alertmanager", name, name, summary=f"{name} is on fire")
        records.set_fields(conn, alert.id, opened_at=db.now() - 120)
        return alert.id


def the_call(engine, fake, alert_id):
    """(call id, the call as the fake Calls API received it), once the worker placed it."""

    def placed():
        with engine.connect() as conn:
            about = calls.about(conn, alert_id)
        if not about:
            return None
        found = [p for p in fake.placed() if p.url.endswith(f"?call={about[0].id}")]
        return (about[0].id, found[0]) if found else None

    return wait_for(placed, f"the call about alert #{alert_id}")


def state(engine, alert_id, call_id):
    with engine.connect() as conn:
        return records.get(conn, alert_id), calls.get(conn, call_id), routes.notes(conn, alert_id)


def test_a_call_answered_with_4_acks_the_alert(stack):
    engine, fake, *_ = stack
    alert_id = overdue_alert(engine, "PaymentsDown")
    call_id, placed = the_call(engine, fake, alert_id)
    assert placed.to == RESPONDER and placed.machine_detection == "Enable"
    player = CallPlayer(placed, TOKEN)
    assert player.answer().status_code == 200
    assert f"Operator alert {alert_id}. PaymentsDown. PaymentsDown is on fire." in player.said
    player.press("4")
    player.hang_up()
    alert, call, notes = state(engine, alert_id, call_id)
    assert alert.acked_by == RESPONDER and call.outcome is Outcome.ACKED and call.call_status == "completed"
    assert player.said[-1] == f"Alert {alert_id} acknowledged. Goodbye."
    assert notes == [f"voice:call:{call_id}:acked"]


def test_a_call_answered_with_6_resolves_the_alert(stack):
    engine, fake, *_ = stack
    alert_id = overdue_alert(engine, "QueueStuck")
    call_id, placed = the_call(engine, fake, alert_id)
    player = CallPlayer(placed, TOKEN)
    player.answer()
    player.press("6")
    player.hang_up()
    alert, call, _ = state(engine, alert_id, call_id)
    assert alert.status == "resolved" and alert.resolved_by == RESPONDER and call.outcome is Outcome.RESOLVED


@pytest.mark.parametrize("how", ["no-answer", "busy", "failed", "machine_start", "machine_end_beep"])
def test_a_call_nobody_answers_is_recorded_as_not_reached(stack, how):
    engine, fake, *_ = stack
    alert_id = overdue_alert(engine, f"DiskFull-{how}")
    call_id, placed = the_call(engine, fake, alert_id)
    if how.startswith("machine"):
        player = CallPlayer(placed, TOKEN, answered_by=how)
        player.answer()
        assert player.last.find("Hangup") is not None and player.said == []
        player.hang_up(seconds=3)
    else:
        CallPlayer(placed, TOKEN).unanswered(how)
    alert, call, notes = state(engine, alert_id, call_id)
    assert call.outcome is Outcome.NOT_REACHED and not call.outcome.taken
    assert alert.acked_at is None and alert.status == "firing"
    assert notes == [f"voice:call:{call_id}:not_reached"]


def test_a_forged_keypress_gets_403_and_changes_nothing(stack):
    engine, fake, *_ = stack
    alert_id = overdue_alert(engine, "CertExpiring")
    call_id, placed = the_call(engine, fake, alert_id)
    player = CallPlayer(placed, "someone-elses-token")
    params = player.params("in-progress", Digits="6")
    for url in (placed.url, placed.url.replace("/answer", "/gather"), placed.status_callback):
        forged = requests.post(
            url, data=params, headers={"X-Twilio-Signature": "bm90IGEgc2lnbmF0dXJl"}, timeout=10
        )
        assert forged.status_code == 403
    assert player.answer().status_code == 403
    alert, call, notes = state(engine, alert_id, call_id)
    assert alert.status == "firing" and alert.acked_at is None
    assert call.outcome is Outcome.PENDING and call.answered_by is None and notes == []


def test_each_call_is_placed_once_across_two_workers(stack):
    engine, fake, env, tmp, _ = stack
    second = start_worker(tmp, env, name="worker-2")
    try:
        # Until its loop runs, a SIGTERM at the end would kill it rather than stop it cleanly.
        wait_for(lambda: " started: " in (tmp / "worker-2.log").read_text(errors="replace"), "worker 2")
        alert_ids = [overdue_alert(engine, f"Burst-{i}") for i in range(6)]

        def all_sent():
            with engine.connect() as conn:
                o = queue.outbox.c
                rows = conn.execute(
                    select(o.status, o.claimed_by).where(o.kind == "call", o.alert_id.in_(alert_ids))
                ).all()
            return rows if len(rows) == 6 and all(r.status == "sent" for r in rows) else None

        rows = wait_for(all_sent, "six calls placed")
        assert second.poll() is None
    finally:
        assert stop_worker(second) == 0
    with engine.connect() as conn:
        ids = [calls.about(conn, a)[0].id for a in alert_ids]
    urls = [p.url.rsplit("=", 1)[1] for p in fake.placed()]
    assert sorted(int(u) for u in urls if int(u) in ids) == sorted(ids)  # each once, none twice
    assert {r.claimed_by for r in rows}  # recorded by whichever worker placed it
