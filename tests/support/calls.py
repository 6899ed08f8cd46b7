"""Calls in tests without a live server: one the worker placed, and Twilio's Voice webhooks to the test client."""

from __future__ import annotations

from core import db
from outbox import calls, queue
from tests.support.phones import sign


def placed_call(services, to: str, alert_id: int, sid: str) -> int:
    """A call the worker placed about `alert_id` (Twilio accepted it as `sid`)."""
    with services.engine.begin() as conn:
        call_id = calls.enqueue_call(conn, to, alert_id, services.settings)
        mark_placed(conn, call_id, sid)
    return call_id


def mark_placed(conn, call_id: int, sid: str) -> None:
    conn.execute(
        queue.outbox.update()
        .where(queue.outbox.c.id == call_id)
        .values(status="sent", provider_sid=sid, sent_at=db.now())
    )
    calls.placed(conn, call_id, sid, "queued")


def voice(client, path: str, call_id: int, to: str, sid: str, **fields):
    """A Voice webhook about the call, signed as Twilio signs it; asserts it was accepted."""
    params = {"CallSid": sid, "AccountSid": "AC" + "1" * 32, "From": "+15005550006", "To": to,
              "CallStatus": "in-progress", "Direction": "outbound-api", "ApiVersion": "2010-04-01", **fields}  # fmt: skip
    target = f"{path}?call={call_id}"
    headers = {"X-Twilio-Signature": sign("http://localhost" + target, params)}
    response = client.post(target, data=params, headers=headers)
    assert response.status_code in (200, 204), response.data
    return response
