"""POST /sms/status: signed delivery reports recorded per text, out-of-order ones ignored."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update

from outbox import queue
from tests.support.phones import ADMIN, sign

URL = "http://localhost/sms/status"


@pytest.fixture
def sent(services):
    with services.engine.begin() as conn:
        outbox_id = queue.enqueue(conn, ADMIN, "ALERT #1: cpu", "alert", services.settings)
        conn.execute(
            update(queue.outbox)
            .where(queue.outbox.c.id == outbox_id)
            .values(status="sent", provider_sid="SM" + "a" * 32, delivery_status="queued")
        )
    return "SM" + "a" * 32


def report(client, sid, status, error_code=None, signature=None):
    params = {"MessageSid": sid, "MessageStatus": status, "AccountSid": "AC" + "1" * 32, "To": ADMIN}
    if error_code:
        params["ErrorCode"] = error_code
    headers = {"X-Twilio-Signature": signature or sign(URL, params)}
    return client.post("/sms/status", data=params, headers=headers)


def row(services):
    with services.engine.connect() as conn:
        return conn.execute(select(queue.outbox)).one()


def test_it_records_each_step_up_to_delivered(client, services, sent):
    for status in ("sent", "delivered"):
        assert report(client, sent, status).status_code == 204
        assert row(services).delivery_status == status
    assert row(services).status == "delivered"


def test_a_late_report_never_overwrites_a_later_state(client, services, sent):
    report(client, sent, "delivered")
    report(client, sent, "sent")
    report(client, sent, "queued")
    assert (row(services).status, row(services).delivery_status) == ("delivered", "delivered")


@pytest.mark.parametrize(("status", "code"), [("undelivered", "30003"), ("failed", "30007")])
def test_a_failed_delivery_is_recorded_with_its_error_code(client, services, sent, status, code):
    report(client, sent, status, code)
    assert (row(services).status, row(services).error_code) == (status, code)


def test_a_report_for_new_alerts_sent_together_applies_to_each_of_them(client, services, sent):
    with services.engine.begin() as conn:
        other = queue.enqueue(conn, ADMIN, "ALERT #2: disk", "alert", services.settings)
        conn.execute(
            update(queue.outbox)
            .where(queue.outbox.c.id == other)
            .values(status="sent", provider_sid=sent, delivery_status="queued")
        )
    report(client, sent, "delivered")
    with services.engine.connect() as conn:
        rows = conn.execute(select(queue.outbox)).all()
    assert [(r.status, r.delivery_status) for r in rows] == [("delivered", "delivered")] * 2


def test_a_forged_report_is_refused_and_changes_nothing(client, services, sent):
    assert report(client, sent, "failed", "30007", signature="forged").status_code == 403
    assert row(services).delivery_status == "queued"


@pytest.mark.parametrize(("sid", "status"), [("SM" + "b" * 32, "delivered"), ("SM" + "a" * 32, "exploded")])
def test_a_report_it_cannot_use_is_acknowledged_and_ignored(client, services, sent, sid, status):
    assert report(client, sid, status).status_code == 204
    assert row(services).delivery_status == "queued"


def test_a_signed_report_without_a_message_sid_is_refused(client, services, sent):
    assert report(client, "", "sent").status_code == 400
    assert row(services).delivery_status == "queued"


def test_metrics_count_outbox_depth_failures_and_delivery_outcomes(client, services, sent):
    with services.engine.begin() as conn:
        queue.enqueue(conn, ADMIN, "waiting", "alert", services.settings)
    report(client, sent, "undelivered", "30003")
    body = client.get("/metrics").get_data(as_text=True)
    assert "operator_outbox_depth 1.0" in body
    assert 'operator_sms_delivery{status="undelivered"} 1.0' in body
    assert 'operator_outbox_messages{kind="alert",status="undelivered"} 1.0' in body
