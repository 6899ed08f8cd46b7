"""security.py: Twilio's signature over the right URL, proxies, SharedKey signing, masking, roles."""

from __future__ import annotations

import re
import uuid

import pytest
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator

from inbound import audit
from rate_limiter import rate_limits
from security import allows, mask, mask_numbers, role_of, same_secret
from tests.support.apps import app_with, with_settings
from tests.support.phones import ADMIN, STRANGER, TOKEN, reply_text

SHARED_KEY = "shared-key-secret-9f8e7d6c5b4a"
URL = "http://localhost/sms"


def form(body: str = "help", number: str = ADMIN) -> dict[str, str]:
    return {
        "MessageSid": "SM" + uuid.uuid4().hex,
        "AccountSid": "AC" + "1" * 32,
        "From": number,
        "To": "+15005550006",
        "Body": body,
        "NumMedia": "0",
    }


def post(
    client, signed_url: str, params: dict, path: str = "/sms", headers=None, secret=TOKEN, algorithm=None
):
    """POST `params` to `path`, signed by Twilio's validator for `signed_url`."""
    signature = RequestValidator(secret).compute_signature(signed_url, params, algorithm)
    return client.post(path, data=params, headers={"X-Twilio-Signature": signature, **(headers or {})})


def rows(app, outcome: str | None = None) -> list:
    query = select(audit.messages)
    if outcome:
        query = query.where(audit.messages.c.outcome == outcome)
    with app.extensions["operator"].engine.connect() as conn:
        return conn.execute(query).all()


def rate_counters(app) -> int:
    with app.extensions["operator"].engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(rate_limits)).scalar_one()


def test_a_correctly_signed_request_runs_the_command(app, client):
    response = post(client, "http://localhost/sms", form("help"))
    assert response.status_code == 200
    assert reply_text(response.data).startswith("Commands:")


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda p, h: h.update({"X-Twilio-Signature": "forged+signature="}), id="forged"),
        pytest.param(lambda p, h: h.pop("X-Twilio-Signature"), id="missing"),
        pytest.param(lambda p, h: h.update({"X-Twilio-Signature": ""}), id="empty"),
        pytest.param(lambda p, h: p.update({"Body": "status"}), id="body-altered"),
        pytest.param(lambda p, h: p.update({"From": "+15555550111"}), id="sender-altered"),
        pytest.param(lambda p, h: p.update({"Extra": "1"}), id="parameter-added"),
        pytest.param(
            lambda p, h: h.update(
                {"X-Twilio-Signature": RequestValidator("another-token-000000").compute_signature("x", p)}
            ),
            id="other-token",
        ),
    ],
)
def test_it_rejects_a_bad_signature_with_403_and_runs_nothing(app, client, tamper):
    params = form("help")
    headers = {"X-Twilio-Signature": RequestValidator(TOKEN).compute_signature(URL, params)}
    tamper(params, headers)
    response = client.post("/sms", data=params, headers=headers)
    assert response.status_code == 403
    assert reply_text(response.data) is None
    # Nothing of an unsigned request is stored: a flood costs a counter, not a row each.
    assert rows(app) == []
    assert rate_counters(app) == 0


@pytest.mark.parametrize(
    "signed_url",
    [
        "http://localhost/sms?x=1",
        "http://localhost/other",
        "http://evil.example/sms",
        "https://localhost/sms",
    ],
)
def test_it_rejects_a_signature_made_for_another_url(app, client, signed_url):
    assert post(client, signed_url, form()).status_code == 403
    assert rows(app) == []


def test_a_request_signed_for_another_app_on_the_account_is_refused_whatever_its_host_header(client):
    # Every app of a Twilio account is signed with the same Auth Token; only our URL counts.
    headers = {"Host": "other-app.example.net"}
    response = post(client, "http://other-app.example.net/sms", form(), headers=headers)
    assert response.status_code == 403


def test_without_public_url_no_signature_passes_whatever_host_it_names(settings):
    with app_with(with_settings(settings, public_url="")) as app:
        client = app.test_client()
        for url, host in [("http://localhost/sms", "localhost"), ("http://evil.example/sms", "evil.example")]:
            assert post(client, url, form(), headers={"Host": host}).status_code == 403
        assert rows(app) == []


def test_a_rejected_request_never_replays_a_message_sid(app, client):
    params = form("help")
    client.post("/sms", data=params, headers={"X-Twilio-Signature": "forged"})
    # The forged copy must not block the genuine message with the same MessageSid.
    response = post(client, "http://localhost/sms", params)
    assert reply_text(response.data).startswith("Commands:")


def test_a_sender_with_control_characters_is_rejected_cleanly(app, client):
    params = form("help", number="+1555\x00555\n0100")
    response = client.post("/sms", data=params, headers={"X-Twilio-Signature": "forged"})
    assert response.status_code == 403
    assert rows(app) == []


class TestPublicUrl:
    @pytest.fixture
    def app(self, settings):
        with app_with(with_settings(settings, public_url="https://ops.example.com")) as app:
            yield app

    def test_it_validates_against_public_url_not_the_local_address(self, app, client):
        response = post(client, "https://ops.example.com/sms", form())
        assert response.status_code == 200 and reply_text(response.data).startswith("Commands:")
        assert post(client, "http://localhost/sms", form()).status_code == 403

    def test_it_keeps_the_raw_query_string_with_encoded_characters(self, client):
        query = "route=on%20call&to=%2B1%2F2&name=Jos%C3%A9&empty="
        response = post(client, f"https://ops.example.com/sms?{query}", form(), path=f"/sms?{query}")
        assert response.status_code == 200
        # The decoded form of the same URL is not what Twilio signed.
        decoded = "https://ops.example.com/sms?route=on call&to=+1/2&name=José&empty="
        assert post(client, decoded, form(), path=f"/sms?{query}").status_code == 403

    def test_it_ignores_forwarded_headers_when_public_url_is_set(self, client):
        headers = {"X-Forwarded-Proto": "http", "X-Forwarded-Host": "evil.example"}
        assert post(client, "http://evil.example/sms", form(), headers=headers).status_code == 403


def test_it_validates_under_a_public_url_with_a_path_prefix(settings):
    with app_with(with_settings(settings, public_url="https://example.com/operator")) as app:
        client = app.test_client()
        assert post(client, "https://example.com/operator/sms", form()).status_code == 200


class TestProxyHops:
    @pytest.fixture
    def app(self, settings):
        with app_with(with_settings(settings, public_url="https://ops.example.com", proxy_hops=1)) as app:
            yield app

    def test_it_validates_against_public_url_behind_a_proxy(self, client):
        headers = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "1.2.3.4"}
        response = post(client, "https://ops.example.com/sms", form(), headers=headers)
        assert response.status_code == 200 and reply_text(response.data).startswith("Commands:")

    @pytest.mark.parametrize(
        "signed_url, headers",
        [
            ("https://evil.example/sms", {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example"}),
            ("http://ops.example.com/sms", {"X-Forwarded-Proto": "http"}),
            ("https://ops.example.com:8443/sms", {"X-Forwarded-Port": "8443"}),
            ("https://ops.example.com/other/sms", {"X-Forwarded-Prefix": "/other"}),
        ],
        ids=["host", "proto", "port", "prefix"],
    )
    def test_forwarded_host_proto_port_and_prefix_are_never_believed(self, client, signed_url, headers):
        assert post(client, signed_url, form(), headers=headers).status_code == 403

    def test_it_keeps_an_encoded_query_string_behind_a_proxy(self, client):
        headers = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "ops.example.com"}
        query = "a=%2Fb%3Fc&d=%E2%82%AC"
        url = f"https://ops.example.com/sms?{query}"
        assert post(client, url, form(), path=f"/sms?{query}", headers=headers).status_code == 200


def test_forwarded_headers_are_not_trusted_without_proxy_hops(client):
    headers = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "ops.example.com"}
    assert post(client, "https://ops.example.com/sms", form(), headers=headers).status_code == 403


class TestSharedKeySignatures:
    SETTINGS_HEADER = {"X-Twilio-Webhooks-Signature-Settings": "key=KS0123,algorithm=HMAC_SHA256"}

    @pytest.fixture
    def app(self, settings):
        with app_with(with_settings(settings, twilio_webhook_shared_key=SHARED_KEY)) as app:
            yield app

    def test_it_accepts_hmac_sha256_with_the_shared_key(self, client):
        response = post(
            client,
            "http://localhost/sms",
            form(),
            headers=self.SETTINGS_HEADER,
            secret=SHARED_KEY,
            algorithm="HMAC_SHA256",
        )
        assert response.status_code == 200 and reply_text(response.data).startswith("Commands:")

    def test_it_rejects_a_sha256_signature_made_with_the_auth_token(self, client):
        response = post(
            client, "http://localhost/sms", form(), headers=self.SETTINGS_HEADER, algorithm="HMAC_SHA256"
        )
        assert response.status_code == 403

    def test_it_rejects_an_unsupported_algorithm(self, client):
        headers = {"X-Twilio-Webhooks-Signature-Settings": "key=KS0123,algorithm=HMAC_MD5"}
        response = post(client, "http://localhost/sms", form(), headers=headers, secret=SHARED_KEY)
        assert response.status_code == 403

    def test_the_auth_token_still_signs_requests_without_the_header(self, client):
        assert post(client, "http://localhost/sms", form()).status_code == 200


def test_a_shared_key_signature_is_refused_when_no_shared_key_is_configured(client):
    headers = {"X-Twilio-Webhooks-Signature-Settings": "key=KS0123,algorithm=HMAC_SHA256"}
    response = post(client, "http://localhost/sms", form(), headers=headers, algorithm="HMAC_SHA256")
    assert response.status_code == 403


@pytest.mark.parametrize(
    "phone, masked",
    [
        ("+15555550100", "+1555***0100"),
        ("+447700900123", "+4477***0123"),
        (" +15555550100 ", "+1555***0100"),
        ("+1234567", "+1***67"),
        ("123", "***"),
        ("", "***"),
    ],
)
def test_it_masks_phone_numbers(phone, masked):
    assert mask(phone) == masked


@pytest.mark.parametrize(
    "text",
    [
        "call +15555550100 now",
        "from 1-555-555-0100",
        "numbers: +447700900123, +15555550199",
        "spaced +1 555 555 0100",
    ],
)
def test_it_masks_every_number_in_free_text(text):
    masked = mask_numbers(text)
    digits = "".join(c for c in masked if c.isdigit())
    assert "***" in masked
    for number in ("5555550100", "447700900123", "5555550199"):
        assert number not in digits


@pytest.mark.parametrize(
    "text",
    [
        "call 1.555.555.0177 now",
        "call +1.555.555.0177 now",
        "call +1 (555) 555-0177 now",
        "call (555) 555-0177 now",
        "call 555 555 0177 now",
        "call 555.555.0177 now",
        "call 1-555-555-0177 now",
        "call +1/555/555/0177 now",
        "call +1\u00a0555\u00a0555\u00a00177 now",
        "call tel:+15555550177 now",
        "call whatsapp:+15555550177 now",
        "call 15555550177 now",
        "call (+1) 555-555-0177 now",
        "call 555 - 555 - 0177 now",
        "call 555\u2013555\u20130177 now",
        "call 555_555_0177 now",
        "call +1 555\n555 0177 now",
    ],
)
def test_a_number_written_with_dots_spaces_dashes_or_brackets_is_masked(text):
    masked = mask_numbers(text)
    assert "***" in masked and masked.startswith("call ") and masked.endswith(" now")
    assert "5555550177" not in re.sub(r"\D", "", masked)


@pytest.mark.parametrize("text", ["refused /sms from 192.168.100.200", "at 12:30:45", "took 250 ms"])
def test_addresses_and_short_figures_are_left_as_written(text):
    assert mask_numbers(text) == text


@pytest.mark.parametrize(
    "role, needed, allowed",
    [
        ("viewer", "viewer", True),
        ("viewer", "responder", False),
        ("responder", "responder", True),
        ("responder", "admin", False),
        ("admin", "viewer", True),
        ("admin", "admin", True),
        (None, "viewer", False),
        ("root", "viewer", False),
    ],
)
def test_roles_are_ordered_viewer_responder_admin(role, needed, allowed):
    assert allows(role, needed) is allowed


def test_only_configured_numbers_have_a_role(settings):
    assert role_of(settings, ADMIN) == "admin"
    assert role_of(settings, STRANGER) is None


def test_secrets_compare_exactly():
    assert same_secret("abc", "abc")
    assert not same_secret("abc", "abd")
    assert not same_secret("", "abc")
