"""Sending the outbox: claims, leases, retries, pacing, storm control and digests."""

from __future__ import annotations

import logging
import re
import threading
import time

import pytest
from sqlalchemy import delete, select

from core import db
from incidents import records
from outbox import backends, queue
from outbox.sender import Brief, Sender, digest_text, reserve_slot, together_text
from rate_limiter import RateLimiter, rate_limits
from services import build_services
from tests.support.apps import with_settings
from tests.support.fakes.twilio_api import FakeTwilio
from tests.support.hosts import PrivatePostgres
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


def test_a_page_through_a_long_provider_outage_is_retried_at_least_every_30_seconds(twilio_services, fake):
    queue_texts(twilio_services, 1, kind="alert")
    queue_texts(twilio_services, 1, kind="reply", body="reply {i}")
    sender = make_sender(twilio_services)
    fake.mode = "500"
    for _ in range(11):  # 2 s doubling would reach 5 minutes by now
        with twilio_services.engine.begin() as conn:
            conn.execute(queue.outbox.update().values(not_before=0))
        sender.step()
    waits = {r.kind: r.not_before - time.time() for r in rows(twilio_services)}
    assert waits["alert"] <= 30, "the page is tried again within 30 s"
    assert waits["reply"] > 30, "other texts back off further"


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


def test_a_page_twilio_took_while_the_store_was_down_past_its_lease_goes_out_once(tmp_path, settings, fake):
    """Twilio takes a page, then the store goes down before the sender can record it, and stays
    down past the page's lease, so another sender claims it once the store is back. The first
    sender records the send as soon as it can and the other, finding the page sent, does not send
    it again."""
    server = PrivatePostgres(tmp_path)
    svc = build_services(with_settings(settings, database_url=server.url, sms_backend="twilio",
                                       twilio_api_url=fake.url, sms_rate=1000.0))  # fmt: skip
    try:
        queue_texts(svc, 1, body="the page")
        first, other = make_sender(svc, "first", lease=30), make_sender(svc, "other", lease=30)
        fake.on_message = lambda _: server.stop()
        with pytest.raises(db.UNREACHABLE):
            first.step()
        fake.on_message = None
        server.start()
        [taken] = other.claim(now=time.time() + 31)
        first.step()
        other.process(taken, threading.Event())
        [row] = rows(svc)
    finally:
        svc.close()
        server.close()
    assert fake.bodies() == ["the page"]
    assert (row.status, row.provider_sid) == ("sent", fake.messages[0].sid)


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


def fire_and_page(services, name: str, kind: str = "alert", severity: str = "", to: str = ADMIN) -> int:
    """An open alert and one page about it for `to`; returns the alert id."""
    with services.engine.begin() as conn:
        alert, _ = records.fire(conn, "alertmanager", f"fp-{name}", name, severity=severity)
        queue.enqueue(conn, to, f"FIRING {name} #{alert.id}: summary of {name}", kind, services.settings,
                      alert_id=alert.id)  # fmt: skip
    return alert.id


def settled(services) -> bool:
    return all(r.status not in ("queued", "sending") and (r.status != "folded" or r.digest_id)
               for r in rows(services))  # fmt: skip


def test_a_storm_of_200_new_alerts_names_every_one_and_never_holds_a_reply(twilio_services, fake):
    sender = make_sender(twilio_services, limits="1 per 2 seconds; 3 per 30 seconds")
    ids = [fire_and_page(twilio_services, f"svc-{i}") for i in range(100)]
    sender.step()
    before = len(fake.bodies())
    ids += [fire_and_page(twilio_services, f"svc-{i}") for i in range(100, 200)]
    queue_texts(twilio_services, to=ADMIN, kind="reply", body="status: all fine")
    drain(sender, lambda: settled(twilio_services))
    texts = fake.bodies()
    assert texts[before] == "status: all fine", "a reply to a person's own command is never held back"
    named = {int(n) for n in re.findall(r"#(\d+)\b", " ".join(texts))}
    assert named == set(ids), "every new alert is named with its number"
    together = [t for t in texts if " new: " in t]
    assert all(len(t) <= 160 for t in texts)
    assert len(together) <= 200 / 5, "new alerts over the limit share texts, several to a text"
    assert {r.status for r in rows(twilio_services)} == {"sent"}, "nothing folded, nothing waiting"


def test_new_alerts_over_the_limit_go_out_together_at_once(twilio_services, fake):
    sender = make_sender(twilio_services, limits="1 per hour")
    first = fire_and_page(twilio_services, "Warmup")
    sender.step()
    ids = [fire_and_page(twilio_services, name) for name in ("PostgresDown", "HighCPU", "DiskFull")]
    sender.step()
    assert fake.bodies() == [
        f"FIRING Warmup #{first}: summary of Warmup",
        f"3 new: #{ids[0]} PostgresDown, #{ids[1]} HighCPU, #{ids[2]} DiskFull",
    ]
    together = [r for r in rows(twilio_services) if r.alert_id in ids]
    assert len({r.provider_sid for r in together}) == 1 and {r.status for r in together} == {"sent"}


@pytest.mark.parametrize("severity", ["critical", "Critical", "P1", "sev1"])
def test_a_critical_alert_is_never_held_and_keeps_its_own_text(twilio_services, fake, severity):
    sender = make_sender(twilio_services, limits="1 per hour")
    fire_and_page(twilio_services, "Warmup")
    sender.step()
    warn = fire_and_page(twilio_services, "HighCPU")
    down = fire_and_page(twilio_services, "PostgresDown", severity=severity)
    with twilio_services.engine.begin() as conn:
        queue.enqueue(conn, ADMIN, f"STILL FIRING 4h: PostgresDown #{down}", "reminder",
                      twilio_services.settings, alert_id=down)  # fmt: skip
        queue.enqueue(conn, ADMIN, f"STILL FIRING 4h: HighCPU #{warn}", "reminder", twilio_services.settings,
                      alert_id=warn)  # fmt: skip
    sender.step()
    assert fake.bodies()[1:] == [
        f"FIRING HighCPU #{warn}: summary of HighCPU",
        f"FIRING PostgresDown #{down}: summary of PostgresDown",
        f"STILL FIRING 4h: PostgresDown #{down}",
    ]
    held = [r for r in rows(twilio_services) if r.status == "folded"]
    assert [(r.kind, r.alert_id) for r in held] == [("reminder", warn)]


def test_a_digest_names_each_folded_alert_by_its_state_and_each_notice(twilio_services, fake):
    sender = make_sender(twilio_services, limits="1 per hour")
    cpu = fire_and_page(twilio_services, "HighCPU")
    disk = fire_and_page(twilio_services, "DiskFull")
    sender.step()
    with twilio_services.engine.begin() as conn:
        settings = twilio_services.settings
        queue.enqueue(conn, ADMIN, f"FIRING 2 HighCPU #{cpu}", "update", settings, alert_id=cpu)
        records.close(conn, disk)
        queue.enqueue(conn, ADMIN, f"RESOLVED after 3m DiskFull #{disk}", "recovery", settings, alert_id=disk)
        queue.enqueue(
            conn, ADMIN, "Cannot evaluate rule db_lag: timeout. Retrying every 2m.", "notice", settings
        )
    sender.step()
    assert [r.status for r in rows(twilio_services)][-3:] == ["folded"] * 3
    with twilio_services.engine.begin() as conn:  # the hour is over
        conn.execute(delete(rate_limits))
    drain(sender, lambda: settled(twilio_services))
    assert fake.bodies()[-1] == (
        f"Held back 3: FIRING #{cpu} HighCPU; RESOLVED #{disk} DiskFull; "
        "NOTICE Cannot evaluate rule db_lag: timeout. Reply ALERTS"
    )


def test_a_digest_too_long_for_one_text_counts_what_it_cannot_name():
    briefs = [Brief(f"#{i} service-number-{i} web-{i}", i % 3 != 0, False) for i in range(40)]
    text = digest_text(45, briefs, ["Cannot evaluate rule x: no data"], 1)
    assert text.startswith("Held back 45: FIRING #1 service-number-1 web-1, #2 service-number-2 web-2")
    hidden = int(text.split(" +")[1].split(" more")[0])
    assert text.endswith(" more. Reply ALERTS") and len(text) <= 160
    assert text.count("#") + hidden == 41


@pytest.mark.parametrize(
    "notice",
    [
        "Cannot evaluate rule checkout_latency_p99: connection refused by prometheus-eu. Retrying every 2m.",
        "Rule payments_queue_depth evaluates again after 25m of errors: now 1234 messages waiting",
        "Heartbeat nightly-backup-verification is late: no ping for 26h from backup-runner-eu-west",
    ],
)
def test_a_digest_never_cuts_a_notice_mid_word(notice):
    text = digest_text(1, [], [notice], 1)
    named = text.removeprefix("Held back 1: NOTICE ").removesuffix(". Reply ALERTS")
    shown = named.removesuffix("...")
    assert shown != named, "a notice this long is shortened, and says so"
    assert notice.startswith(shown) and notice[len(shown)] in " .:,"


def test_a_digest_never_cuts_an_alert_name_mid_word():
    alert = records.Alert(
        id=7, source=records.Source.DATADOG, key="k", name="Queue depth on checkout exceeds its threshold in prod",
        summary="", severity="", labels={}, url=None, group_key=None, status=records.Status.FIRING,
        started_at=0.0, last_seen=0.0, resolved_at=None, acked_by=None, acked_at=None, snoozed_until=None,
        silence_id=None, last_notified_at=None, escalated_at=None,
    )  # fmt: skip
    shown = alert.line().removeprefix("#7 ").removesuffix("...")
    assert alert.name.startswith(shown) and alert.name[len(shown)] == " "


def test_new_alerts_that_do_not_fit_one_text_continue_in_the_next():
    lines = [f"#{i} alert-with-a-long-name-{i}" for i in range(20)]
    text, shown = together_text(lines, 1)
    assert text.startswith(f"{shown} new: #0 alert-with-a-long-name-0, #1 ")
    assert 2 <= shown < 20 and len(text) <= 160
    assert together_text(lines, 3)[1] > shown


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
