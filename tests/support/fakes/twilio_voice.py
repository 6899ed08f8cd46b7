"""Twilio's side of a placed call: the signed requests Twilio Voice makes to the app, in order.

A call the fake Calls API recorded (twilio_api.Placed) is played here: status callbacks to its
StatusCallback (initiated, ringing, in-progress, then completed or no-answer/busy/failed), the
answer request to its Url with AnsweredBy (machine detection on), and the keypress to the
Gather's action with Digits, each signed with the account's token as Twilio signs.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

import requests
from twilio.request_validator import RequestValidator

from tests.support.fakes.twilio_api import Placed

ACCOUNT_SID = "AC" + "1" * 32


def signed_post(url: str, params: dict[str, str], token: str, session: requests.Session | None = None):
    signature = RequestValidator(token).compute_signature(url, params)
    poster = session or requests
    return poster.post(url, data=params, headers={"X-Twilio-Signature": signature}, timeout=30)


@dataclass
class CallPlayer:
    """Plays one call; `last` is the TwiML the app answered most recently."""

    placed: Placed
    token: str
    answered_by: str = "human"
    sequence: int = 0
    last: ET.Element | None = None
    said: list[str] = field(default_factory=list)

    def params(self, status: str, **extra: str) -> dict[str, str]:
        return {
            "CallSid": self.placed.sid,
            "AccountSid": ACCOUNT_SID,
            "From": self.placed.from_,
            "To": self.placed.to,
            "Called": self.placed.to,
            "Caller": self.placed.from_,
            "CallStatus": status,
            "Direction": "outbound-api",
            "ApiVersion": "2010-04-01",
            "ToCountry": "US",
            "FromCountry": "US",
            **extra,
        }

    def report(self, status: str, **extra: str) -> requests.Response:
        """A status callback, as Twilio posts one per subscribed event."""
        params = self.params(status, SequenceNumber=str(self.sequence), CallbackSource="call-progress-events",
                             Timestamp="Wed, 02 Dec 2026 13:00:00 +0000", **extra)  # fmt: skip
        self.sequence += 1
        return signed_post(self.placed.status_callback, params, self.token)

    def answer(self) -> requests.Response:
        """Picked up: ringing reported, then the answer URL fetched with machine detection's verdict."""
        self.report("initiated")
        self.report("ringing")
        response = signed_post(
            self.placed.url, self.params("in-progress", AnsweredBy=self.answered_by), self.token
        )
        self._read(response)
        if response.status_code == 200:
            self.report("in-progress", AnsweredBy=self.answered_by)
        return response

    def press(self, digit: str) -> requests.Response:
        """The callee presses `digit` while the Gather listens."""
        assert self.last is not None, "press before the call was answered"
        gather = self.last.find("Gather")
        assert gather is not None, f"no Gather in {ET.tostring(self.last)!r}"
        params = self.params("in-progress", Digits=digit, FinishedOnKey="")
        response = signed_post(gather.attrib["action"], params, self.token)
        self._read(response)
        return response

    def hang_up(self, seconds: int = 20) -> requests.Response:
        return self.report("completed", CallDuration=str(seconds), AnsweredBy=self.answered_by)

    def unanswered(self, status: str) -> requests.Response:
        """Never picked up: no-answer, busy, failed or canceled."""
        self.report("initiated")
        if status != "failed":
            self.report("ringing")
        return self.report(status, CallDuration="0")

    def _read(self, response: requests.Response) -> None:
        if response.status_code == 200 and response.content:
            self.last = ET.fromstring(response.content)
            self.said.extend(s.text or "" for s in self.last.iter("Say"))
