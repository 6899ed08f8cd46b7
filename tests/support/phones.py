"""The test numbers and token, and a phone that texts the app signed exactly as Twilio signs."""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET

from twilio.request_validator import RequestValidator

TOKEN = "test-auth-token-0123456789abcdef"
ADMIN = "+15555550100"
RESPONDER = "+15555550101"
VIEWER = "+15555550102"
STRANGER = "+15555550199"


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
