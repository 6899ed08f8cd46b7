"""Where queued texts go: Twilio's Messages API through the official `Client`, or the log.

`classify()` sorts a failed send into temporary (retried) and permanent (failed for good), with
Twilio's error code kept for the record.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

import requests
from twilio.base.exceptions import TwilioRestException, TwilioServiceException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from config import Settings
from monitors.base_monitor import BaseMonitor, MonitorError
from security import mask

logger = logging.getLogger(__name__)

# Where Twilio reports delivery (outbox.delivery serves it).
STATUS_PATH = "/sms/status"
# The call progress Twilio reports to a call's status callback.
CALL_EVENTS = ["initiated", "ringing", "answered", "completed"]


class SendError(Exception):
    """A send that did not go through: `temporary` ones are retried, the rest fail for good."""

    def __init__(self, code: str, message: str, temporary: bool):
        super().__init__(f"{code}: {message}")
        self.code, self.message, self.temporary = code, message, temporary


@dataclass(frozen=True)
class Accepted:
    sid: str
    status: str


class Backend(Protocol):
    """Hands one text to a provider; raises on failure (classify() sorts the exception)."""

    name: str

    def send(self, to: str, body: str, status_callback: str) -> Accepted: ...

    def call(self, to: str, answer_url: str, status_callback: str, timeout: float) -> Accepted: ...


class ConsoleBackend:
    """Writes each text to the log instead of sending it; the outbox keeps the record."""

    name = "console"

    def send(self, to: str, body: str, status_callback: str) -> Accepted:
        logger.info("SMS (console) to %s: %s", mask(to), body)
        return Accepted("console-" + uuid.uuid4().hex, "sent")

    def call(self, to: str, answer_url: str, status_callback: str, timeout: float) -> Accepted:
        logger.info("call (console) to %s: %s", mask(to), answer_url)
        return Accepted("console-" + uuid.uuid4().hex, "queued")


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

    def call(self, to: str, answer_url: str, status_callback: str, timeout: float) -> Accepted:
        """Start a call whose instructions Twilio fetches from `answer_url` once answered.

        Machine detection makes Twilio tell a voicemail greeting from a person (AnsweredBy),
        so a voicemail never counts as reaching anyone.
        """
        call = self.client.calls.create(
            to=to,
            from_=self.from_number,
            url=answer_url,
            status_callback=status_callback,
            status_callback_event=CALL_EVENTS,
            machine_detection="Enable",
            timeout=int(min(600, max(5, timeout))),  # Twilio's bounds for ringing
        )
        return Accepted(call.sid, call.status or "queued")


class TwilioAccount(BaseMonitor):
    """`flask check`'s SMS line: Twilio's account resource fetched (read-only) with our credentials."""

    name = "sms"

    def __init__(self, settings: Settings, timeout: float = 4.0):
        super().__init__(timeout)
        self.settings = settings

    def _check(self) -> str:
        if self.settings.sms_backend != "twilio":
            return "console: texts are written to the log, not sent (SMS_BACKEND)"
        client = TwilioBackend(self.settings, self.timeout).client
        try:
            account = client.api.v2010.accounts(self.settings.twilio_account_sid).fetch()
        except TwilioRestException as exc:
            if exc.status in (401, 403):
                raise MonitorError(
                    f"auth refused (HTTP {exc.status}): check TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN", True
                ) from None
            raise MonitorError(f"Twilio said HTTP {exc.status}: {exc.msg}") from None
        except requests.RequestException as exc:
            raise MonitorError(classify(exc).message) from None
        if account.status != "active":
            raise MonitorError(f"account {account.friendly_name!r} is {account.status}", True)
        return f"ok account {account.friendly_name!r} ({account.type}), sending from {mask(self.settings.twilio_from_number)}"


def make_backend(settings: Settings, timeout: float = 10.0) -> Backend:
    """The backend SMS_BACKEND names (console when Twilio credentials are absent)."""
    return TwilioBackend(settings, timeout) if settings.sms_backend == "twilio" else ConsoleBackend()


def status_callback_url(settings: Settings) -> str:
    """Where Twilio reports delivery; empty without a public PUBLIC_URL (Twilio cannot call this host)."""
    host = urlsplit(settings.public_url).hostname or ""
    if not host or host == "localhost" or host.startswith("127.") or host == "::1":
        return ""
    return settings.public_url + STATUS_PATH


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
