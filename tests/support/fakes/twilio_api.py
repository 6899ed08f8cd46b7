"""A local stand-in for Twilio's Messages and Calls APIs on a real loopback socket.

It serves POST /2010-04-01/Accounts/{AccountSid}/Messages.json the way the real twilio `Client`
calls it (HTTP basic auth, form fields To/From/Body/StatusCallback) and answers with the
documented message resource (201) or the documented error JSON; GET .../Accounts/{AccountSid}.json
answers the account resource (its `status` is `account_status`), for `flask check`; POST
.../Calls.json records a call (To, From, Url or Twiml, StatusCallback, StatusCallbackEvent,
MachineDetection, Timeout) and answers the documented call resource, which
tests/support/fakes/twilio_voice.py then plays Twilio's part for. Tests choose the answer with
`mode` (for every request) or `answers` (a queue consumed first, one answer per request).
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

from tests.support.servers import free_port

PATH = re.compile(r"^/2010-04-01/Accounts/(AC[0-9a-fA-F]{32})/Messages\.json$")
CALLS = re.compile(r"^/2010-04-01/Accounts/(AC[0-9a-fA-F]{32})/Calls\.json$")
ACCOUNT = re.compile(r"^/2010-04-01/Accounts/(AC[0-9a-fA-F]{32})\.json$")

# mode -> (HTTP status, Twilio error code, message), as documented at twilio.com/docs/errors
ERRORS = {
    "21211": (400, 21211, "The 'To' number {to} is not a valid phone number."),
    "21610": (400, 21610, "Attempt to send to unsubscribed recipient"),
    "21614": (400, 21614, "'To' number is not a valid mobile number"),
    "21217": (400, 21217, "Phone number does not appear to be valid"),
    "21215": (
        400,
        21215,
        "Account not authorized to call {to}. Perhaps you need to enable some international permissions",
    ),
    "20429": (429, 20429, "Too Many Requests"),
    "500": (500, 20500, "An internal server error has occurred"),
}


@dataclass
class Sent:
    sid: str
    to: str
    from_: str
    body: str
    status_callback: str
    at: float


@dataclass
class Placed:
    """A call as Twilio was asked to place it."""

    sid: str
    to: str
    from_: str
    url: str
    status_callback: str
    events: list[str]
    machine_detection: str
    timeout: str
    at: float


@dataclass
class FakeTwilio:
    account_sid: str
    auth_token: str
    mode: str = "ok"  # ok | 21211 | 21610 | 21614 | 20429 | 500 | hang
    answers: list[str] = field(default_factory=list)
    messages: list[Sent] = field(default_factory=list)
    calls: list[Placed] = field(default_factory=list)
    requests: int = 0
    hang_seconds: float = 30.0
    port: int = 0  # 0: a free one; pass the old port to bring a stopped fake "back up"
    host: str = "127.0.0.1"  # another address of this machine: a test network's (tests/support/hosts.py)
    account_status: str = "active"  # active | suspended | closed
    # Called with each message taken, before the answer goes back: a fault between the provider
    # taking a text and the sender hearing so (the store going down, say).
    on_message: Callable[[Sent], None] | None = None

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        self.released = threading.Event()
        self.connections: set[socket.socket] = set()
        self.port = self.port or free_port()
        self.url = f"http://{self.host}:{self.port}"
        self.server = ThreadingHTTPServer((self.host, self.port), _handler(self))
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def start(self) -> FakeTwilio:
        self.thread.start()
        return self

    def stop(self) -> None:
        """Gone as a real outage is: no new connections, and the kept-alive ones cut."""
        self.released.set()
        self.server.shutdown()
        self.server.server_close()
        with self.lock:
            open_ = list(self.connections)
        for conn in open_:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def next_answer(self) -> str:
        with self.lock:
            self.requests += 1
            return self.answers.pop(0) if self.answers else self.mode

    def bodies(self) -> list[str]:
        with self.lock:
            return [m.body for m in self.messages]

    def record(self, form: dict[str, str]) -> Sent:
        sent = Sent(
            sid="SM" + uuid.uuid4().hex,
            to=form.get("To", ""),
            from_=form.get("From", ""),
            body=form.get("Body", ""),
            status_callback=form.get("StatusCallback", ""),
            at=time.time(),
        )
        with self.lock:
            self.messages.append(sent)
        if self.on_message is not None:
            self.on_message(sent)
        return sent

    def placed(self) -> list[Placed]:
        with self.lock:
            return list(self.calls)

    def record_call(self, form: dict[str, list[str]]) -> Placed:
        one = {k: v[0] for k, v in form.items()}
        placed = Placed(
            sid="CA" + uuid.uuid4().hex,
            to=one.get("To", ""),
            from_=one.get("From", ""),
            url=one.get("Url", ""),
            status_callback=one.get("StatusCallback", ""),
            events=form.get("StatusCallbackEvent", []),
            machine_detection=one.get("MachineDetection", ""),
            timeout=one.get("Timeout", ""),
            at=time.time(),
        )
        with self.lock:
            self.calls.append(placed)
        return placed

    def call_resource(self, placed: Placed) -> dict:
        """The call resource as documented for POST .../Calls.json."""
        now = formatdate(placed.at, usegmt=True).replace("GMT", "+0000")
        uri = f"/2010-04-01/Accounts/{self.account_sid}/Calls/{placed.sid}.json"
        return {
            "account_sid": self.account_sid,
            "annotation": None,
            "answered_by": None,
            "api_version": "2010-04-01",
            "caller_name": None,
            "date_created": now,
            "date_updated": now,
            "direction": "outbound-api",
            "duration": None,
            "end_time": None,
            "forwarded_from": None,
            "from": placed.from_,
            "from_formatted": placed.from_,
            "group_sid": None,
            "parent_call_sid": None,
            "phone_number_sid": "PN" + "0" * 32,
            "price": None,
            "price_unit": "USD",
            "queue_time": "0",
            "sid": placed.sid,
            "start_time": None,
            "status": "queued",
            "subresource_uris": {"recordings": uri.replace(".json", "/Recordings.json")},
            "to": placed.to,
            "to_formatted": placed.to,
            "trunk_sid": None,
            "uri": uri,
        }

    def resource(self, sent: Sent) -> dict:
        """The message resource as documented for POST .../Messages.json."""
        now = formatdate(sent.at, usegmt=True).replace("GMT", "+0000")
        uri = f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sent.sid}.json"
        return {
            "account_sid": self.account_sid,
            "api_version": "2010-04-01",
            "body": sent.body,
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": sent.from_,
            "messaging_service_sid": None,
            "num_media": "0",
            "num_segments": "1",
            "price": None,
            "price_unit": "USD",
            "sid": sent.sid,
            "status": "queued",
            "subresource_uris": {"media": uri.replace(".json", "/Media.json")},
            "to": sent.to,
            "uri": uri,
        }


def account(fake: FakeTwilio) -> dict:
    """The account resource as documented for GET /2010-04-01/Accounts/{Sid}.json."""
    uri = f"/2010-04-01/Accounts/{fake.account_sid}.json"
    return {
        "auth_token": fake.auth_token,
        "date_created": "Thu, 30 Jul 2015 20:00:00 +0000",
        "date_updated": "Thu, 30 Jul 2015 20:00:00 +0000",
        "friendly_name": "Operator test account",
        "owner_account_sid": fake.account_sid,
        "sid": fake.account_sid,
        "status": fake.account_status,
        "subresource_uris": {"messages": uri.replace(".json", "/Messages.json")},
        "type": "Full",
        "uri": uri,
    }


def _handler(fake: FakeTwilio) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body leave in one write (flushed after each request), without Nagle's
        # delay, so the fake answers as fast as a real API would.
        wbufsize = 64 * 1024
        disable_nagle_algorithm = True

        def log_message(self, *args) -> None:
            pass

        def setup(self) -> None:
            super().setup()
            with fake.lock:
                fake.connections.add(self.connection)

        def finish(self) -> None:
            with fake.lock:
                fake.connections.discard(self.connection)
            super().finish()

        def _json(self, status: int, payload: dict) -> None:
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _error(self, status: int, code: int, message: str) -> None:
            more = f"https://www.twilio.com/docs/errors/{code}"
            self._json(status, {"code": code, "message": message, "more_info": more, "status": status})

        def _authorized(self, sid: str) -> bool:
            expected = base64.b64encode(f"{fake.account_sid}:{fake.auth_token}".encode()).decode()
            if sid != fake.account_sid or self.headers.get("Authorization") != f"Basic {expected}":
                self._error(401, 20003, "Authenticate")
                return False
            return True

        def _failing(self, to: str) -> bool:
            """Answer as `mode` (or the next of `answers`) says, unless that is a success."""
            answer = fake.next_answer()
            if answer == "hang":
                fake.released.wait(fake.hang_seconds)
                return True
            if answer in ERRORS:
                status, code, message = ERRORS[answer]
                self._error(status, code, message.format(to=to))
                return True
            return False

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            match = ACCOUNT.match(self.path)
            if not match:
                self._error(404, 20404, "The requested resource was not found")
            elif self._authorized(match.group(1)):
                self._json(200, account(fake))

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            length = int(self.headers.get("Content-Length") or 0)
            lists = parse_qs(self.rfile.read(length).decode())
            form = {k: v[0] for k, v in lists.items()}
            if CALLS.match(self.path):
                self._call(CALLS.match(self.path).group(1), lists, form)
                return
            match = PATH.match(self.path)
            if not match:
                self._error(404, 20404, "The requested resource was not found")
                return
            if not self._authorized(match.group(1)):
                return
            if not form.get("To") or not (form.get("Body") or form.get("MediaUrl")):
                self._error(400, 21602, "Message body is required.")
                return
            if self._failing(form["To"]):
                return
            self._json(201, fake.resource(fake.record(form)))

        def _call(self, sid: str, lists: dict[str, list[str]], form: dict[str, str]) -> None:
            if not self._authorized(sid):
                return
            if not form.get("To"):
                self._error(400, 21201, "No 'To' number is specified")
                return
            if not form.get("From"):
                self._error(400, 21213, "No 'From' number is specified")
                return
            if not (form.get("Url") or form.get("Twiml") or form.get("ApplicationSid")):
                self._error(400, 21205, "Url parameter is required")
                return
            if self._failing(form["To"]):
                return
            self._json(201, fake.call_resource(fake.record_call(lists)))

    return Handler
