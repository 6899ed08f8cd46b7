"""The real twilio Client against a local fake of the Messages API, and the outbox door."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from outbox import backends, queue
from tests.support.apps import with_settings
from tests.support.fakes.twilio_api import FakeTwilio
from tests.support.phones import ADMIN


@pytest.fixture
def fake(settings):
    fake = FakeTwilio(settings.twilio_account_sid, settings.twilio_auth_token, hang_seconds=5).start()
    yield fake
    fake.stop()


@pytest.fixture
def twilio_settings(settings, fake):
    return with_settings(
        settings, sms_backend="twilio", twilio_api_url=fake.url, public_url="https://ops.example.com"
    )


def test_the_twilio_client_posts_the_text_with_a_status_callback(twilio_settings, fake):
    backend = backends.make_backend(twilio_settings, timeout=2)
    accepted = backend.send(ADMIN, "ALERT #1: cpu 91", backends.status_callback_url(twilio_settings))
    assert accepted.sid.startswith("SM") and accepted.status == "queued"
    [sent] = fake.messages
    assert (sent.to, sent.from_, sent.body) == (ADMIN, "+15005550006", "ALERT #1: cpu 91")
    assert sent.status_callback == "https://ops.example.com/sms/status"
    assert sent.sid == accepted.sid


def test_wrong_credentials_are_retried_rather_than_losing_the_page(twilio_settings, fake):
    backend = backends.make_backend(with_settings(twilio_settings, twilio_auth_token="wrong-token-123"), 2)
    with pytest.raises(Exception) as caught:
        backend.send(ADMIN, "hello", "")
    failure = backends.classify(caught.value)
    assert (failure.code, failure.temporary) == ("20003", True)


@pytest.mark.parametrize(
    ("mode", "code", "temporary"),
    [
        ("21211", "21211", False),
        ("21610", "21610", False),
        ("21614", "21614", False),
        ("20429", "20429", True),
        ("500", "20500", True),
        ("hang", "timeout", True),
    ],
)
def test_twilio_failures_are_sorted_into_temporary_and_permanent(
    twilio_settings, fake, mode, code, temporary
):
    fake.mode = mode
    backend = backends.make_backend(twilio_settings, timeout=1)
    with pytest.raises(Exception) as caught:
        backend.send(ADMIN, "hello", "")
    failure = backends.classify(caught.value)
    assert (failure.code, failure.temporary) == (code, temporary)
    assert fake.messages == []


def test_an_unreachable_provider_is_a_temporary_failure(twilio_settings, fake):
    fake.stop()
    with pytest.raises(Exception) as caught:
        backends.make_backend(twilio_settings, timeout=1).send(ADMIN, "hello", "")
    assert backends.classify(caught.value).code == "connection"
    assert backends.classify(caught.value).temporary


def test_the_console_backend_is_used_without_twilio_credentials(settings):
    assert backends.make_backend(settings).name == "console"
    accepted = backends.make_backend(settings).send(ADMIN, "hi", "")
    assert accepted.status == "sent"


def test_no_status_callback_is_requested_without_a_public_url(settings):
    assert backends.status_callback_url(settings) == ""


def test_enqueue_stores_a_gsm7_text_cut_to_one_segment(services):
    with services.engine.begin() as conn:
        outbox_id = queue.enqueue(conn, ADMIN, "CPU “hot” — " + "x" * 400, "alert", services.settings)
    with services.engine.connect() as conn:
        row = conn.execute(select(queue.outbox).where(queue.outbox.c.id == outbox_id)).one()
    assert row.status == "queued" and row.segments == 1
    assert row.body.startswith('CPU "hot" - xxx') and row.body.endswith("...")
