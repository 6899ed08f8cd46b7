"""Fixture chain settings -> app -> client, and a phone that signs like Twilio."""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from dataclasses import replace

import pytest
from twilio.request_validator import RequestValidator

from app import create_app
from config import Settings, load_file

TOKEN = "test-auth-token-0123456789abcdef"
ADMIN = "+15555550100"
RESPONDER = "+15555550101"
VIEWER = "+15555550102"
STRANGER = "+15555550199"


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(
        twilio_auth_token=TOKEN,
        twilio_account_sid="AC" + "1" * 32,
        twilio_from_number="+15005550006",
        authorized={ADMIN: "admin", RESPONDER: "responder", VIEWER: "viewer"},
        database_url=f"sqlite:///{tmp_path}/operator.db",
        log_dir=str(tmp_path / "logs"),
        reply_deadline=5.0,
    )


@pytest.fixture
def app(settings):
    app = create_app(settings)
    yield app
    app.extensions["operator"].close()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def services(app):
    return app.extensions["operator"]


def with_settings(settings: Settings, **changes) -> Settings:
    return replace(settings, **changes)


def from_file(path) -> dict:
    """The settings of an operator.yml at `path`, read the way Settings.from_env reads it."""
    return {"operator_config": str(path), "file": load_file(str(path))}


def sign(url: str, params: dict, token: str = TOKEN) -> str:
    return RequestValidator(token).compute_signature(url, params)


class Phone:
    """Texts the app through the test client, signed exactly as Twilio signs."""

    def __init__(self, client, number: str = ADMIN, url: str = "http://localhost/sms"):
        self.client, self.number, self.url = client, number, url

    def post(self, body: str, sid: str | None = None, number: str | None = None, headers=None):
        params = {
            "MessageSid": sid or "SM" + uuid.uuid4().hex,
            "AccountSid": "AC" + "1" * 32,
            "From": number or self.number,
            "To": "+15005550006",
            "Body": body,
            "NumMedia": "0",
        }
        all_headers = {"X-Twilio-Signature": sign(self.url, params), **(headers or {})}
        path = "/" + self.url.split("://", 1)[1].split("/", 1)[1]
        return self.client.post(path, data=params, headers=all_headers, base_url=self.url.rsplit("/", 1)[0])

    def text(self, body: str, **kwargs) -> str | None:
        """The reply text, or None for an empty <Response/>."""
        response = self.post(body, **kwargs)
        assert response.status_code == 200, response.data
        return reply_text(response.data)


def reply_text(xml: bytes) -> str | None:
    messages = [m.text or "" for m in ET.fromstring(xml).iter("Message")]
    return messages[0] if messages else None


@pytest.fixture
def phone(client) -> Phone:
    return Phone(client)
