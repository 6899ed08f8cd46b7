"""Retention: finished texts, the message audit and old dedup keys are pruned; live ones stay."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select, update

from core import db
from heartbeats import watch
from inbound import audit
from incidents import escalation, records, reminders
from outbox import calls, queue
from tests.support.heartbeats import worker_beat
from tests.support.phones import ADMIN, RESPONDER
from tests.support.servers import fresh_postgres_database
from worker import loop as worker
from worker import retention

DAY = 86400.0


def text(services, status: str, days_old: float, alert_id: int | None = None, to: str = ADMIN) -> int:
    with services.engine.begin() as conn:
        row_id = queue.enqueue(
            conn, to, f"{status} {days_old}d", "alert", services.settings, alert_id=alert_id
        )
        conn.execute(
            update(queue.outbox)
            .where(queue.outbox.c.id == row_id)
            .values(status=status, created_at=db.now() - days_old * DAY)
        )
    return row_id


def remaining(services) -> set[str]:
    with services.engine.connect() as conn:
        return set(conn.scalars(select(queue.outbox.c.body)))


def test_finished_texts_older_than_the_window_are_pruned_and_the_rest_kept(services):
    for status in queue.FINISHED:
        text(services, status, 31)
        text(services, status, 29)
    text(services, "queued", 31)
    text(services, "sending", 31)
    deleted = retention.run(services)
    assert deleted["outbox"] == len(queue.FINISHED)
    assert remaining(services) == {f"{s} 29d" for s in queue.FINISHED} | {"queued 31d", "sending 31d"}


def test_texts_about_an_alert_still_firing_are_kept_so_its_resolved_reaches_them(services):
    with services.engine.begin() as conn:
        old, _ = records.fire(conn, "alertmanager", "g1", "DiskFull")
    text(services, "sent", 40, alert_id=old.id, to=RESPONDER)
    retention.run(services)
    with services.engine.connect() as conn:
        assert queue.numbers_paged(conn, old.id) == [RESPONDER]
        records.close(conn, old.id)
        conn.commit()
    assert retention.run(services)["outbox"] == 1


def test_the_message_audit_keeps_ninety_days(services):
    now = db.now()
    with services.engine.begin() as conn:
        for days in (91, 89):
            conn.execute(
                audit.messages.insert().values(
                    received_at=now - days * DAY, phone=ADMIN, phone_masked="+1555***0100", outcome="ok"
                )
            )
    assert retention.run(services)["messages"] == 1
    with services.engine.connect() as conn:
        assert conn.scalar(select(func.min(audit.messages.c.received_at))) > now - 90 * DAY


def test_dedup_keys_are_kept_while_their_alert_fires(services):
    old = db.now() - 60 * DAY
    with services.engine.begin() as conn:
        firing, _ = records.fire(conn, "alertmanager", "g1", "DiskFull")
        closed, _ = records.fire(conn, "alertmanager", "g2", "HighCPU")
        records.close(conn, closed.id)
        conn.execute(
            records.alert_events.insert(),
            [
                {"event_key": "live", "alert_id": firing.id, "received_at": old},
                {"event_key": "done", "alert_id": closed.id, "received_at": old},
                {"event_key": "fresh", "alert_id": closed.id, "received_at": db.now()},
            ],
        )
    assert retention.run(services)["alert_events"] == 1
    with services.engine.connect() as conn:
        keys = set(conn.scalars(select(records.alert_events.c.event_key)))
    assert keys == {"live", "fresh"}


def test_heartbeats_of_workers_gone_for_a_week_are_forgotten(services):
    worker_beat(services, seconds_ago=8 * DAY, worker_id="old-host:17")
    worker_beat(services, seconds_ago=6 * DAY, worker_id="old-host:18")
    assert retention.run(services)["worker_heartbeats"] == 1


def test_it_prunes_in_batches_on_postgresql(settings):
    from app import create_app
    from tests.support.apps import with_settings

    url, drop = fresh_postgres_database()
    app = create_app(with_settings(settings, database_url=url))
    services = app.extensions["operator"]
    try:
        for _ in range(7):
            text(services, "delivered", 45)
        text(services, "delivered", 1)
        assert retention.run(services, batch=3)["outbox"] == 7
        assert remaining(services) == {"delivered 1d"}
    finally:
        services.close()
        drop()


def test_the_leading_worker_runs_retention_hourly_and_the_alert_jobs_every_period():
    jobs = dict(worker.periodic_jobs(15.0))
    assert jobs[retention.run] == retention.PERIOD == 3600.0
    assert jobs[escalation.run] == jobs[reminders.run] == jobs[watch.run] == 15.0


@pytest.mark.parametrize("days", [0, 29.9])
def test_nothing_recent_is_touched(services, days):
    text(services, "sent", days)
    assert retention.run(services) == {
        "outbox": 0, "calls": 0, "messages": 0, "alert_events": 0, "worker_heartbeats": 0,
    }  # fmt: skip


def test_an_old_finished_call_goes_with_its_record_and_a_recent_one_stays(services):
    with services.engine.begin() as conn:
        alert, _ = records.fire(conn, "alertmanager", "Gone", "Gone")
        records.close(conn, alert.id)
        old, recent = (calls.enqueue_call(conn, RESPONDER, alert.id, services.settings) for _ in range(2))
        conn.execute(
            update(queue.outbox)
            .where(queue.outbox.c.id == old)
            .values(status="undelivered", created_at=db.now() - 31 * DAY)
        )
    deleted = retention.run(services)
    assert deleted["outbox"] == 1 and deleted["calls"] == 1
    with services.engine.connect() as conn:
        assert [c.id for c in calls.about(conn, alert.id)] == [recent]
