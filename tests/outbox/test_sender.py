"""Sending the outbox: claims, leases, retries, pacing, storm control and digests."""

from __future__ import annotations

import logging
import threading
import time

import pytest
from sqlalchemy import select

from core import db
from incidents import records
from outbox import backends, queue
from outbox.sender import Sender, reserve_slot
from rate_limiter import RateLimiter
from services import build_services
from tests.support.apps import with_settings
from tests.support.fakes.twilio_api import FakeTwilio
from tests.support.phones import ADMIN, RESPONDER
from tests.support.servers import fresh_postgres_database


@pytest.fixture
def fake(settings):
    fake = FakeTwilio(settings.twilio_account_sid, settings.twilio_auth_token, hang_seconds=5).start()
    yield fake
    fake.stop()


def make_sender(services, worker_id="w1", limits="100 per minute", **kwargs) -> Sender:
    storm = RateLimiter(services.limiter.storage, limits, "alerts")
    return Sender(services.engine, services.settings, backends.make_backend(services.settings, 1), storm,
                  records, worker_id, **kwargs)  # fmt: skip


@pytest.fixture
def twilio_services(settings, fake):
    svc = build_services(
        with_settings(settings, sms_backend="twilio", twilio_api_url=fake.url, sms_rate=1000.0)
    )
    yield svc
    svc.close()


def queue_texts(
    services, count=1, to=ADMIN, kind="alert", alert_id=None, body="text {i}", **kwargs
) -> list[int]:
    with services.engine.begin() as conn:
        return [
            queue.enqueue(conn, to, body.format(i=i), kind, services.settings, alert_id=alert_id, **kwargs)
            for i in range(count)
        ]


def rows(services):
    with services.engine.connect() as conn:
        return conn.execute(select(queue.outbox).order_by(queue.outbox.c.id)).all()


def drain(sender, until, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not until():
        assert time.monotonic() < deadline, "outbox not drained in time"
        if not sender.step():
            time.sleep(0.05)


def test_it_sends_queued_texts_and_records_the_twilio_sid(twilio_services, fake):
    queue_texts(twilio_services, 3)
    make_sender(twilio_services).step()
    assert fake.bodies() == ["text 0", "text 1", "text 2"]
    sent = rows(twilio_services)
    assert [r.status for r in sent] == ["sent"] * 3
    assert [r.provider_sid for r in sent] == [m.sid for m in fake.messages]
    assert all(r.attempts == 1 and r.claimed_by == "w1" for r in sent)


def test_a_permanent_failure_is_marked_failed_and_never_retried(twilio_services, fake):
    fake.mode = "21211"
    queue_texts(twilio_services)
    sender = make_sender(twilio_services)
    for _ in range(3):
        sender.step()
    [row] = rows(twilio_services)
    assert (row.status, row.error_code) == ("failed", "21211")
    assert "not a valid phone number" in row.error_message
    assert fake.requests == 1


def test_an_opted_out_recipient_is_logged_as_an_error(twilio_services, fake, caplog):
    fake.mode = "21610"
    queue_texts(twilio_services)
    with caplog.at_level(logging.ERROR):
        make_sender(twilio_services).step()
    assert rows(twilio_services)[0].error_code == "21610"
    assert any("cannot be paged" in r.getMessage() and r.levelno == logging.ERROR for r in caplog.records)
    assert ADMIN not in caplog.text


@pytest.mark.parametrize("outage", ["500", "20429", "hang", "down"])
def test_every_text_is_delivered_once_twilio_is_back(twilio_services, fake, outage):
    queue_texts(twilio_services, 5)
    sender = make_sender(twilio_services, retry_base=0.2, retry_cap=1.0)
    if outage == "down":
        fake.stop()
    else:
        fake.mode = outage
        fake.hang_seconds = 3
    sender.step()
    assert all(r.status == "queued" and r.attempts >= 1 for r in rows(twilio_services))
    if outage == "down":
        fake = FakeTwilio(fake.account_sid, fake.auth_token, port=fake.port).start()
    fake.mode = "ok"
    try:
        drain(sender, lambda: all(r.status == "sent" for r in rows(twilio_services)))
    finally:
        if outage == "down":
            fake.stop()
    assert sorted(fake.bodies()) == [f"text {i}" for i in range(5)]


def test_a_text_older_than_sms_max_age_is_given_up(settings, fake):
    svc = build_services(
        with_settings(settings, sms_backend="twilio", twilio_api_url=fake.url, sms_max_age=1.0)
    )
    try:
        fake.mode = "500"
        queue_texts(svc)
        sender = make_sender(svc, retry_base=2.0)
        sender.step()
        [row] = rows(svc)
        assert (row.status, row.error_code) == ("failed", "20500")
        assert row.error_message.startswith("gave up after 1 attempts")
    finally:
        svc.close()


def test_a_row_abandoned_by_a_dead_sender_is_taken_after_its_lease(twilio_services, fake):
    queue_texts(twilio_services, 2)
    dead = make_sender(twilio_services, "dead", lease=30)
    assert len(dead.claim()) == 2
    other = make_sender(twilio_services, "other", lease=30)
    assert other.claim() == []
    taken = other.claim(now=time.time() + 31)
    assert [r.claimed_by for r in taken] == ["other", "other"]


def test_shared_pacing_spaces_texts_by_segments_per_second(services):
    now = 1_000_000.0
    starts = [reserve_slot(services.engine, seconds, now) for seconds in (0.5, 0.5, 1.0, 0.5)]
    assert starts == [now, now + 0.5, now + 1.0, now + 2.0]
    # After an idle spell the schedule restarts at the present, without a burst of saved credit.
    assert reserve_slot(services.engine, 0.5, now + 100) == now + 100


def test_a_recovery_notice_is_dropped_when_its_alert_fires_again(twilio_services, fake):
    with twilio_services.engine.begin() as conn:
        alert, _ = records.fire(conn, "alertmanager", "fp1", "db-cpu")
        records.close(conn, alert.id)
    queue_texts(twilio_services, kind="recovery", alert_id=alert.id, body="RESOLVED db-cpu")
    with twilio_services.engine.begin() as conn:
        records.fire(conn, "alertmanager", "fp1", "db-cpu")
    make_sender(twilio_services).step()
    assert fake.bodies() == []
    assert rows(twilio_services)[0].status == "dropped"


def test_a_storm_of_200_alerts_becomes_the_stepped_limit_plus_digests(twilio_services, fake):
    limits = "1 per 2 seconds; 3 per 30 seconds"
    sender = make_sender(twilio_services, limits=limits)

    def storm(start: int) -> None:
        with twilio_services.engine.begin() as conn:
            for i in range(start, start + 100):
                alert, _ = records.fire(conn, "alertmanager", f"fp{i}", f"svc-{i}")
                queue.enqueue(conn, ADMIN, f"ALERT #{alert.id}: svc-{i}", "alert", twilio_services.settings,
                            alert_id=alert.id)  # fmt: skip

    storm(0)
    sender.step()
    storm(100)
    queue_texts(twilio_services, to=ADMIN, kind="reply", body="status: all fine")

    def settled() -> bool:
        return all(r.status not in ("queued", "sending") and (r.status != "folded" or r.digest_id)
                   for r in rows(twilio_services))  # fmt: skip

    drain(sender, settled)
    texts = fake.bodies()
    alerts = [t for t in texts if t.startswith("ALERT")]
    digests = [t for t in texts if "firing:" in t]
    assert "status: all fine" in texts, "a reply to a person's own command is never held back"
    assert len(alerts) + len(digests) <= 3
    assert len(alerts) == 1 and 1 <= len(digests) <= 2
    assert digests[-1].startswith(("199 firing: svc-199, svc-198", "100 firing: svc-199"))
    assert digests[-1].endswith(". Reply ALERTS") and len(digests[-1]) <= 160
    assert len(texts) == 1 + len(alerts) + len(digests)


def test_two_senders_on_postgresql_never_send_the_same_row(settings, fake):
    url, drop = fresh_postgres_database()
    svc = build_services(
        with_settings(
            settings, database_url=url, sms_backend="twilio", twilio_api_url=fake.url, sms_rate=1000.0
        )
    )
    try:
        queue_texts(svc, 120, kind="reply")
        senders = [make_sender(svc, f"w{i}") for i in range(3)]
        for s in senders:
            s.batch = 5

        def run(sender):
            while sender.step():
                pass

        threads = [threading.Thread(target=run, args=(s,)) for s in senders]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        bodies = fake.bodies()
        assert sorted(bodies) == sorted(f"text {i}" for i in range(120))
        assert len({r.claimed_by for r in rows(svc)}) > 1
        assert db.is_postgres(svc.engine)
    finally:
        svc.close()
        drop()


@pytest.mark.parametrize(
    ("kind", "change", "reason"),
    [
        ("reminder", {"acked_at": 1.0, "acked_by": RESPONDER}, "alert acked, snoozed or silenced"),
        ("escalation", {"snoozed_until": 4102444800.0}, "alert acked, snoozed or silenced"),
        (
            "escalation",
            {"silence_id": "5d2b", "silenced_until": 4102444800.0},
            "alert acked, snoozed or silenced",
        ),
        ("reminder", {"status": "resolved", "resolved_at": 1.0}, "alert resolved"),
    ],
)
def test_a_reminder_or_escalation_taken_over_while_it_waited_is_dropped(
    twilio_services, fake, kind, change, reason
):
    with twilio_services.engine.begin() as conn:
        alert, _ = records.fire(conn, "alertmanager", "fp1", "db-cpu")
    queue_texts(twilio_services, kind=kind, alert_id=alert.id, body="STILL FIRING db-cpu")
    queue_texts(twilio_services, kind="alert", alert_id=alert.id, body="FIRING db-cpu")
    with twilio_services.engine.begin() as conn:
        records.set_fields(conn, alert.id, **change)
    make_sender(twilio_services).step()
    assert fake.bodies() == ["FIRING db-cpu"], "the first page still goes"
    assert (rows(twilio_services)[0].status, rows(twilio_services)[0].error_message) == ("dropped", reason)


def test_a_reminder_goes_once_an_expired_snooze_or_silence_is_over(twilio_services, fake):
    with twilio_services.engine.begin() as conn:
        alert, _ = records.fire(conn, "alertmanager", "fp1", "db-cpu")
        records.set_fields(conn, alert.id, snoozed_until=1.0, silence_id="old", silenced_until=1.0)
    queue_texts(twilio_services, kind="reminder", alert_id=alert.id, body="STILL FIRING db-cpu")
    make_sender(twilio_services).step()
    assert fake.bodies() == ["STILL FIRING db-cpu"]
