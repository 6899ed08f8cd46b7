"""Storm control and bare acks end to end: the real worker process, the Twilio fake, signed SMS.

The storm limits are per person; these tests replay what a new user met with the defaults: a
critical page held for minutes, a digest that hid numbers and RESOLVED notices, and "on it"
acking a page that had not reached the phone. Windows of a few seconds stand in for minutes
where waiting out the real ones would be slow.
"""

from __future__ import annotations

from contextlib import contextmanager

import pytest
from sqlalchemy import select

from app import create_app
from outbox import queue
from tests.support.alertmanager_server import wait_for
from tests.support.apps import with_settings
from tests.support.fakes.twilio_api import FakeTwilio
from tests.support.phones import ADMIN, RESPONDER, Phone, sign
from tests.support.workers import app_worker_env, received, start_worker, stop_worker

pytestmark = pytest.mark.slow
AM_TOKEN = "e2e-storm-token-51aa"
PUBLIC = "https://ops.example.com"


@pytest.fixture
def fake(settings):
    fake = FakeTwilio(settings.twilio_account_sid, settings.twilio_auth_token).start()
    yield fake
    fake.stop()


@pytest.fixture
def app(settings):
    app = create_app(
        with_settings(settings, alertmanager_token=AM_TOKEN, rate_limit="1000 per minute", recovery_delay=0.0)
    )
    yield app
    app.extensions["operator"].close()


def notify(client, name: str, hosts: tuple[str, ...] = ("web-1",), summary: str = "", severity: str = "warning",
           status: str = "firing") -> int:  # fmt: skip
    """One Alertmanager notification for the group `name`; returns its alert id."""
    alerts = [
        {
            "status": status,
            "labels": {
                "alertname": name,
                "severity": severity,
                **({"instance": f"{host}:9100"} if host else {}),
            },
            "annotations": {"summary": summary},
            "startsAt": "2026-01-01T00:00:00Z",
            "endsAt": "2026-01-01T00:05:00Z" if status == "resolved" else "0001-01-01T00:00:00Z",
            "fingerprint": f"{name}-{host or 'all'}",
        }
        for host in hosts
    ]
    body = {
        "version": "4",
        "groupKey": f'{{}}:{{alertname="{name}"}}',
        "status": status,
        "truncatedAlerts": 0,
        "commonLabels": {"alertname": name, "severity": severity},
        "commonAnnotations": {"summary": summary},
        "alerts": alerts,
    }
    response = client.post(
        "/webhook/alertmanager", json=body, headers={"Authorization": f"Bearer {AM_TOKEN}"}
    )
    assert response.status_code == 200, response.json
    return response.json["alerts"][0]


@contextmanager
def worker(tmp_path, settings, fake, **env):
    proc = start_worker(tmp_path, app_worker_env(tmp_path, settings, fake, **env))
    try:
        yield proc
    finally:
        assert stop_worker(proc) == 0


def outbox_rows(app, kind: str) -> list:
    with app.extensions["operator"].engine.connect() as conn:
        o = queue.outbox.c
        return conn.execute(select(queue.outbox).where(o.kind == kind).order_by(o.id)).all()


def test_a_critical_alert_pages_at_once_with_number_and_summary_when_the_default_limits_are_spent(
    tmp_path, settings, app, fake
):
    client = app.test_client()
    # ALERT_LIMITS empty: the shipped default, 1 per minute; 5 per 15 minutes; 12 per hour.
    with worker(tmp_path, settings, fake, ALERT_LIMITS=""):
        cpu = notify(client, "HighCPU", ("web-1",), "CPU above 90%")
        wait_for(
            lambda: received(fake, rf"FIRING HighCPU web-1 #{cpu}: CPU above 90%", RESPONDER),
            "the first page",
        )
        db_down = notify(client, "PostgresDown", ("db-1",), "Postgres is down", severity="critical")
        page = rf"FIRING PostgresDown db-1 #{db_down}: Postgres is down"
        wait_for(
            lambda: received(fake, page, RESPONDER), "the critical page, inside the spent minute", timeout=20
        )
        disk = notify(client, "DiskFull", ("db-2",), "Disk 95% full")
        disk_page = rf"FIRING DiskFull db-2 #{disk}: Disk 95% full"
        wait_for(lambda: received(fake, disk_page, RESPONDER), "a new warning's first page too", timeout=20)
        # An update (the group grew) is what the limits hold back.
        notify(client, "HighCPU", ("web-1", "web-2"), "CPU above 90%")
        wait_for(lambda: [r for r in outbox_rows(app, "update") if r.status == "folded"], "the update folded")


def test_new_alerts_arriving_together_share_one_text_listing_each_number_and_name(
    tmp_path, settings, app, fake
):
    client = app.test_client()
    with worker(tmp_path, settings, fake, ALERT_LIMITS="1 per hour"):
        first = notify(client, "Warmup", ("web-9",))
        wait_for(lambda: len(received(fake, rf"FIRING Warmup web-9 #{first}")) == 2, "the first page")
    ids = [
        notify(client, "PostgresDown", ("db-1",), "Postgres is down"),
        notify(client, "HighCPU", ("web-1",), "CPU above 90%"),
        notify(client, "DiskFull", ("",), "Disk full"),
    ]
    with worker(tmp_path, settings, fake, ALERT_LIMITS="1 per hour"):
        together = f"3 new: #{ids[0]} PostgresDown db-1, #{ids[1]} HighCPU web-1, #{ids[2]} DiskFull"
        wait_for(lambda: received(fake, together, RESPONDER) and received(fake, together, ADMIN), together)
    assert len(fake.messages) == 4, [m.body for m in fake.messages]


def test_a_digest_names_every_alert_it_held_back_resolved_notices_included(tmp_path, settings, app, fake):
    client = app.test_client()
    with worker(tmp_path, settings, fake, ALERT_LIMITS="1 per 8 seconds", RECOVERY_DELAY="0s"):
        cpu = notify(client, "HighCPU", ("web-1",), "CPU above 90%")
        wait_for(lambda: received(fake, rf"FIRING HighCPU web-1 #{cpu}: .*", RESPONDER), "the first page")
        disk = notify(client, "DiskFull", ("db-1",), "Disk 95% full")
        wait_for(lambda: received(fake, rf"FIRING DiskFull db-1 #{disk}: .*", RESPONDER), "the second page")
        notify(client, "HighCPU", ("web-1", "web-2"), "CPU above 90%")  # an update
        notify(client, "DiskFull", ("db-1",), "Disk 95% full", status="resolved")  # a RESOLVED
        digest = (
            rf"Held back 2: FIRING #{cpu} HighCPU web-1 \+1; RESOLVED #{disk} DiskFull db-1\. Reply ALERTS"
        )
        wait_for(lambda: received(fake, digest, RESPONDER), "the digest naming both")
    assert received(fake, r"FIRING 2 HighCPU.*", RESPONDER) == []
    assert received(fake, r"RESOLVED after .*", RESPONDER) == []


def status_report(client, sid: str, status: str) -> None:
    url = PUBLIC + "/sms/status"
    params = {"MessageSid": sid, "MessageStatus": status, "AccountSid": "AC" + "1" * 32, "To": RESPONDER}
    response = client.post(
        "/sms/status", data=params, headers={"X-Twilio-Signature": sign(url, params)}, base_url=PUBLIC
    )
    assert response.status_code == 204


def test_on_it_acks_only_a_page_the_carrier_accepted_for_that_phone(tmp_path, settings, fake):
    app = create_app(with_settings(settings, alertmanager_token=AM_TOKEN, public_url=PUBLIC))
    try:
        client = app.test_client()
        responder = Phone(client, RESPONDER, url=PUBLIC + "/sms")
        down = notify(client, "PostgresDown", ("db-1",), "Postgres is down", severity="critical")
        # Still in the outbox: nothing reached the phone yet.
        reply = responder.text("on it")
        assert reply == (
            f"#{down} PostgresDown db-1 has not reached you yet. Reply YES to ack it, or text 'ack {down}'."
        )
        with worker(tmp_path, settings, fake, PUBLIC_URL=PUBLIC):
            [page] = wait_for(lambda: [m for m in fake.messages if m.to == RESPONDER], "the page")
        # Twilio took it ("queued") but the carrier has not: still not "received".
        assert responder.text("on it").startswith(f"#{down} PostgresDown db-1 has not reached you yet.")
        status_report(client, page.sid, "sent")
        assert responder.text("on it").startswith(f"Acked #{down} PostgresDown (firing ")
    finally:
        app.extensions["operator"].close()
