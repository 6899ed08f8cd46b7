"""Voice calls about alerts: queued like texts, placed by the worker, and what became of each.

A call is an outbox row of kind `call` (so it is claimed, leased, paced, storm-limited, retried
and sent once across workers exactly like a text) plus a `calls` row, keyed by the same id, that
records how it went: Twilio's CallStatus, AnsweredBy, and the outcome escalation reads with
`outcome(conn, call_id)`. Twilio's callbacks reach the `voice` package, which reports here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import Column, Connection, Float, Integer, String, Table, Text, select, update

from config import Settings
from core import db
from outbox.queue import Delivery, Kind, outbox

logger = logging.getLogger(__name__)

# Where Twilio fetches the call's instructions, posts keypresses and reports the call's progress
# (the voice package serves them); each carries ?call=<id>, inside what Twilio signs.
ANSWER_PATH = "/voice/answer"
GATHER_PATH = "/voice/gather"
STATUS_PATH = "/voice/status"


class Outcome(StrEnum):
    """How a call ended for escalation: `acked`/`resolved` stop it; the rest move it on."""

    PENDING = "pending"  # queued, ringing or talking: wait
    ACKED = "acked"  # answered and pressed 4
    RESOLVED = "resolved"  # answered and pressed 6
    ESCALATE = "escalate"  # answered and pressed 1: go to the next step now
    ANSWERED = "answered"  # a person answered and hung up without acking
    NOT_REACHED = "not_reached"  # no-answer, busy, failed, canceled, a machine, never placed

    @property
    def taken(self) -> bool:
        """Someone is on it: the escalation stops."""
        return self in (Outcome.ACKED, Outcome.RESOLVED)

    @property
    def final(self) -> bool:
        return self is not Outcome.PENDING


calls = Table(
    "calls",
    db.metadata,
    Column("id", Integer, primary_key=True),  # the outbox row's id
    Column("alert_id", Integer, index=True),
    Column("to_number", String(32), nullable=False),
    Column("call_sid", String(64), index=True),
    # Twilio's latest CallStatus (queued, initiated, ringing, in-progress, completed, busy, ...)
    Column("call_status", String(16)),
    Column("answered_by", String(32)),
    Column("outcome", String(16), nullable=False),
    Column("reason", Text),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

# Twilio's CallStatus values, ranked so a late "ringing" never undoes "completed".
RANK = {
    "queued": 0,
    "initiated": 1,
    "ringing": 2,
    "in-progress": 3,
    "answered": 3,
    "completed": 4,
    "busy": 4,
    "no-answer": 4,
    "failed": 4,
    "canceled": 4,
}
NOT_REACHED_STATUSES = ("busy", "no-answer", "failed", "canceled")
SAID = {
    Outcome.ACKED: "answered, pressed 4: acked",
    Outcome.RESOLVED: "answered, pressed 6: resolved",
    Outcome.ESCALATE: "answered, pressed 1: escalate",
    Outcome.ANSWERED: "answered, hung up without a key",
}


@dataclass(frozen=True)
class Call:
    id: int
    alert_id: int | None
    to_number: str
    call_sid: str | None
    call_status: str | None
    answered_by: str | None
    outcome: Outcome
    reason: str | None

    @classmethod
    def from_row(cls, row: Any) -> Call:
        data = dict(row._mapping)
        data.pop("created_at"), data.pop("updated_at")
        data["outcome"] = Outcome(data["outcome"])
        return cls(**data)

    @property
    def told(self) -> str:
        """How it went, in a few words for people ("answered, pressed 4: acked", "not reached: busy")."""
        if self.outcome is Outcome.PENDING:
            return self.call_status or "queued"
        if self.outcome is Outcome.NOT_REACHED:
            return f"not reached: {self.reason}" if self.reason else "not reached"
        return SAID[self.outcome]

    @property
    def over(self) -> bool:
        """Twilio reported the call ended: nothing said on it counts any more."""
        return RANK.get(self.call_status or "", 0) >= 4


def enqueue_call(conn: Connection, to: str, alert_id: int, settings: Settings, about: str = "") -> int:
    """Queue a call to `to` about `alert_id` in the caller's transaction; returns the call id.

    `about` is a line for the record (the call itself reads the alert as it is when answered).
    """
    now = db.now()
    inserted = conn.execute(
        outbox.insert().values(
            to_number=to,
            body=about or f"call about alert #{alert_id}",
            segments=1,
            kind=Kind.CALL,
            alert_id=alert_id,
            status=Delivery.QUEUED,
            created_at=now,
            not_before=now,
            attempts=0,
        )
    )
    call_id = db.inserted_id(inserted)
    conn.execute(
        calls.insert().values(
            id=call_id,
            alert_id=alert_id,
            to_number=to,
            outcome=Outcome.PENDING,
            created_at=now,
            updated_at=now,
        )
    )
    return call_id


def get(conn: Connection, call_id: int) -> Call | None:
    row = conn.execute(select(calls).where(calls.c.id == call_id)).first()
    return Call.from_row(row) if row else None


def lock(conn: Connection, call_id: int) -> Call | None:
    """The call, held until the transaction ends: one keypress at a time acts on it."""
    row = conn.execute(select(calls).where(calls.c.id == call_id).with_for_update()).first()
    return Call.from_row(row) if row else None


def lock_answered(conn: Connection, call_id: int, sid: str) -> Call | None:
    """The call, held, when `sid` is the CallSid Twilio gave it; None for any other.

    A keypress acts only on its own call: its CallSid must be the one recorded when the call
    was placed or answered, so a signed callback carrying another call's id changes nothing
    (and one before any CallSid was recorded has no call to act on).
    """
    call = lock(conn, call_id)
    if call is None or not call.call_sid or call.call_sid != sid:
        if call is not None:
            logger.warning("call #%d: a keypress for another CallSid ignored", call_id)
        return None
    return call


def outcome(conn: Connection, call_id: int) -> Outcome:
    """How the call went so far (PENDING while it is queued, ringing or in progress)."""
    call = get(conn, call_id)
    if call is None:
        raise LookupError(f"call #{call_id} does not exist")
    return call.outcome


def about(conn: Connection, alert_id: int) -> list[Call]:
    """Every call about this alert, first placed first."""
    rows = conn.execute(select(calls).where(calls.c.alert_id == alert_id).order_by(calls.c.id)).all()
    return [Call.from_row(r) for r in rows]


def of(conn: Connection, call_ids: list[int]) -> dict[int, Call]:
    """The calls with these ids (a page of outbox rows), by id."""
    if not call_ids:
        return {}
    rows = conn.execute(select(calls).where(calls.c.id.in_(call_ids))).all()
    return {r.id: Call.from_row(r) for r in rows}


def placed(conn: Connection, call_id: int, sid: str, status: str) -> None:
    """Twilio accepted the call: its CallSid, for the record and to match the callbacks.

    Twilio may call back before the sender records this; an outcome settled meanwhile is
    applied to the outbox row now, which was still `sending` then.
    """
    conn.execute(
        update(calls)
        .where(calls.c.id == call_id, calls.c.call_sid.is_(None))
        .values(call_sid=sid, call_status=status, updated_at=db.now())
    )
    call = get(conn, call_id)
    if call is not None and call.outcome.final:
        _follow(conn, call_id, call.outcome)


def status(conn: Connection, call_id: int, sid: str, call_status: str, answered_by: str = "") -> Call | None:
    """Apply a CallStatus report (and AnsweredBy when Twilio sent it); returns the call after it.

    Ended without anyone pressing a key: no-answer, busy, failed, canceled or a machine is
    `not_reached`; a person who answered and hung up is `answered`.
    """
    call = _locked(conn, call_id, sid)
    if call is None:
        return None
    values: dict[str, Any] = {"call_sid": call.call_sid or sid, "updated_at": db.now()}
    if RANK.get(call_status, -1) > RANK.get(call.call_status or "", -1):
        values["call_status"] = call_status
    if answered_by and not call.answered_by:
        values["answered_by"] = answered_by
    conn.execute(update(calls).where(calls.c.id == call_id).values(**values))
    machine = _machine(answered_by or call.answered_by or "")
    if call_status in NOT_REACHED_STATUSES:
        finish(conn, call_id, Outcome.NOT_REACHED, call_status)
    elif call_status == "completed":
        reached = Outcome.NOT_REACHED if machine else Outcome.ANSWERED
        finish(conn, call_id, reached, "a machine answered" if machine else "hung up without a key")
    elif machine:
        finish(conn, call_id, Outcome.NOT_REACHED, "a machine answered")
    return get(conn, call_id)


def finish(conn: Connection, call_id: int, result: Outcome, reason: str) -> bool:
    """Settle the call's outcome once (a later report never changes it); False when already settled.

    The outbox row follows: a call that reached its person counts as `delivered` (they heard of
    the alert and get its RESOLVED text), one that did not as `undelivered`.
    """
    settled = conn.execute(
        update(calls)
        .where(calls.c.id == call_id, calls.c.outcome == Outcome.PENDING)
        .values(outcome=result, reason=reason, updated_at=db.now())
    ).rowcount
    if not settled:
        return False
    _follow(conn, call_id, result)
    return True


def _follow(conn: Connection, call_id: int, result: Outcome) -> None:
    """The outbox row of a placed call says whether it told its person."""
    told = Delivery.UNDELIVERED if result is Outcome.NOT_REACHED else Delivery.DELIVERED
    conn.execute(
        update(outbox)
        .where(outbox.c.id == call_id, outbox.c.status.in_((Delivery.SENT, Delivery.DELIVERED)))
        .values(status=told, delivery_updated_at=db.now())
    )


def _locked(conn: Connection, call_id: int, sid: str) -> Call | None:
    call = lock(conn, call_id)
    if call is None:
        return None
    if call.call_sid and sid and call.call_sid != sid:
        logger.warning("call #%d: a callback for another CallSid ignored", call_id)
        return None
    return call


def _machine(answered_by: str) -> bool:
    return answered_by.startswith("machine") or answered_by == "fax"


def prune(conn: Connection, batch: int) -> int:
    """Delete up to `batch` call records whose outbox row retention has deleted already."""
    return db.delete_batch(conn, calls.c.id, calls.c.id.not_in(select(outbox.c.id)), batch=batch)


def urls(settings: Settings, call_id: int) -> tuple[str, str]:
    """(answer URL, status callback URL) of a call; PUBLIC_URL is what Twilio reaches us by."""
    suffix = f"?call={call_id}"
    return settings.public_url + ANSWER_PATH + suffix, settings.public_url + STATUS_PATH + suffix
