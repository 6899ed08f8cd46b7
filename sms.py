"""The one door for outbound SMS: every text to a person is composed and queued here.

`enqueue()` writes to the durable `outbox` table inside the caller's transaction, so an alert and
the texts it causes are stored together or not at all. The worker process sends the outbox with
`sender.Sender` through a backend from `make_backend()`; `classify()` decides what is retried.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

import requests
from sqlalchemy import Column, Connection, Float, Integer, String, Table, Text
from twilio.base.exceptions import TwilioRestException, TwilioServiceException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

import composer
import store
from config import Settings
from security import mask

logger = logging.getLogger(__name__)

# kind: reply | alert | reminder | recovery | digest | notice | escalation
outbox = Table(
    "outbox",
    store.metadata,
    Column("id", Integer, primary_key=True),
    Column("to_number", String(32), nullable=False, index=True),
    Column("body", Text, nullable=False),
    Column("segments", Integer, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("alert_id", Integer, index=True),
    # queued | sending | sent | delivered | undelivered | failed | folded | dropped
    Column("status", String(16), nullable=False, index=True),
    Column("created_at", Float, nullable=False),
    Column("not_before", Float, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("claimed_by", String(64)),
    Column("claimed_until", Float),
    Column("provider_sid", String(64), index=True),
    Column("error_code", String(16)),
    Column("error_message", Text),
    Column("sent_at", Float),
    Column("delivery_updated_at", Float),
    # Twilio's own status from the StatusCallback (queued, sent, delivered, ...), kept apart from
    # `status` so a late "queued" callback can never put a sent row back in our queue.
    Column("delivery_status", String(16)),
    # The digest row a folded message was summarized in.
    Column("digest_id", Integer, index=True),
)

# Kinds that page people and so obey per-recipient storm limits; replies never wait.
STORM_KINDS = frozenset({"alert", "reminder", "recovery", "notice"})
STATUS_PATH = "/sms/status"


def enqueue(
    conn: Connection,
    to: str,
    body: str,
    kind: str,
    settings,
    alert_id: int | None = None,
    not_before: float | None = None,
) -> int:
    """Compose `body` for SMS and queue it for `to`; returns the outbox id."""
    text = composer.fit(body, settings.sms_max_segments, settings.sms_emoji)
    created = store.now()
    return conn.execute(
        outbox.insert().values(
            to_number=to,
            body=text,
            segments=composer.segments(text),
            kind=kind,
            alert_id=alert_id,
            status="queued",
            created_at=created,
            not_before=not_before or created,
            attempts=0,
        )
    ).inserted_primary_key[0]


class SendError(Exception):
    """A send that did not go through: `temporary` ones are retried, the rest fail for good."""

    def __init__(self, code: str, message: str, temporary: bool):
        super().__init__(f"{code}: {message}")
        self.code, self.message, self.temporary = code, message, temporary


@dataclass(frozen=True)
class Accepted:
    sid: str
    status: str


class ConsoleBackend:
    """Writes each text to the log instead of sending it; the outbox keeps the record."""

    name = "console"

    def send(self, to: str, body: str, status_callback: str) -> Accepted:
        logger.info("SMS (console) to %s: %s", mask(to), body)
        return Accepted("console-" + uuid.uuid4().hex, "sent")


class TwilioBackend:
    """Sends with the official twilio `Client`, optionally against TWILIO_API_URL."""

    name = "twilio"

    def __init__(self, settings: Settings, timeout: float = 10.0):
        self.from_number = settings.twilio_from_number
        self.client = Client(
            settings.twilio_account_sid,
            settings.twilio_auth_token,
            http_client=TwilioHttpClient(timeout=timeout),
        )
        if settings.twilio_api_url:
            # Every resource URL of the Api domain is built from Domain.base_url, so this one
            # attribute moves all Messages calls to a regional proxy or a local test double.
            self.client.api.base_url = settings.twilio_api_url
        # The library logs each request line at INFO, numbers included; ours is enough.
        logging.getLogger("twilio.http_client").setLevel(logging.WARNING)

    def send(self, to: str, body: str, status_callback: str) -> Accepted:
        extra = {"status_callback": status_callback} if status_callback else {}
        message = self.client.messages.create(to=to, from_=self.from_number, body=body, **extra)
        return Accepted(message.sid, message.status or "queued")


def make_backend(settings: Settings, timeout: float = 10.0) -> ConsoleBackend | TwilioBackend:
    """The backend SMS_BACKEND names (console when Twilio credentials are absent)."""
    return TwilioBackend(settings, timeout) if settings.sms_backend == "twilio" else ConsoleBackend()


def status_callback_url(settings: Settings) -> str:
    """Where Twilio reports delivery; empty without PUBLIC_URL (Twilio needs a public URL)."""
    return settings.public_url + STATUS_PATH if settings.public_url else ""


def classify(exc: Exception) -> SendError:
    """Sort a failed send into temporary (retry) or permanent (give up), with Twilio's code."""
    if isinstance(exc, TwilioRestException | TwilioServiceException):
        status = int(getattr(exc, "status", 0) or 0)
        code = int(exc.code or status)
        if isinstance(exc, TwilioServiceException):
            message = exc.detail or exc.title
        else:
            message = str(exc.msg).removeprefix("Unable to create record: ")
        # 401 means our credentials are wrong right now (a rotation in progress); retry until
        # SMS_MAX_AGE rather than throw away every page.
        temporary = status >= 500 or status in (401, 429) or code == 20429
        return SendError(str(code), message, temporary)
    if isinstance(exc, requests.Timeout):
        return SendError("timeout", "no answer from the SMS provider in time", True)
    if isinstance(exc, requests.ConnectionError | OSError):
        return SendError("connection", "cannot reach the SMS provider", True)
    if isinstance(exc, requests.RequestException):
        return SendError("http", exc.__class__.__name__, True)
    return SendError("internal", exc.__class__.__name__, True)
