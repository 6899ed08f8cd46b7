"""The record of every inbound SMS and what Operator answered: the `messages` table, and counters.

This module owns the table. The row is written before any work (so nothing accepted is lost and a
Twilio retry of the same MessageSid is recognised), then finished with the command and reply.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from flask import g, has_request_context
from prometheus_client import Counter, Histogram
from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Float,
    Index,
    Integer,
    String,
    Table,
    Text,
    bindparam,
    func,
    select,
    update,
)

from core import db
from security import mask


class Outcome(StrEnum):
    PROCESSING = "processing"  # stored, not answered yet
    OK = "ok"
    ERROR = "error"
    RATE_LIMITED = "rate_limited"
    DUPLICATE = "duplicate"
    UNAUTHORIZED = "unauthorized"
    REJECTED = "rejected"  # bad or missing signature (rows from before refusals stopped being stored)


messages = Table(
    "messages",
    db.metadata,
    Column("id", Integer, primary_key=True),
    Column("received_at", Float, nullable=False, index=True),
    # NULL for rows that never reached the idempotency check (rejected, unauthorized, duplicate).
    Column("message_sid", String(64), unique=True),
    Column("phone", String(32), nullable=False, index=True),
    Column("phone_masked", String(32), nullable=False),
    Column("body", Text),
    Column("command", String(32)),
    # What the body was read as ("snooze 12 30m", "none") and how sure the resolver was (0..1).
    Column("canonical", String(160)),
    Column("confidence", Float),
    Column("reply", Text),
    Column("segments", Integer),
    Column("latency_ms", Float),
    Column("outcome", String(16), nullable=False),
    Column("request_id", String(32)),
)
# The dashboard's message log: newest first, filtered by number, command or outcome (segments
# ride along so the month's sum reads the index alone).
Index("ix_messages_received_id", messages.c.received_at, messages.c.id, messages.c.segments)
Index("ix_messages_phone_received", messages.c.phone, messages.c.received_at)
Index("ix_messages_command_received", messages.c.command, messages.c.received_at)
Index("ix_messages_outcome_received", messages.c.outcome, messages.c.received_at)

COMMANDS = Counter("operator_commands_total", "Inbound SMS by command and outcome", ["command", "outcome"])
RATE_LIMITED = Counter("operator_rate_limited_total", "Inbound SMS over the per-number rate limit")
REPLY_LATENCY = Histogram(
    "operator_reply_latency_seconds",
    "Time from a verified request to its reply",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 12, 15),
)


@dataclass(frozen=True)
class Answer:
    """What Operator answered a text, as its row records it."""

    text: str | None  # None: answer with an empty <Response/>, no SMS
    outcome: Outcome
    command: str = ""
    segments: int = 0
    # What the text was read as, and how surely (None when no command was read: STOP, limits).
    canonical: str | None = None
    confidence: float | None = None
    latency_ms: float | None = None

    def columns(self) -> dict[str, Any]:
        return {
            "command": self.command,
            "reply": self.text,
            "segments": self.segments,
            "latency_ms": self.latency_ms,
            "outcome": self.outcome,
            "canonical": self.canonical[:160] if self.canonical else self.canonical,
            "confidence": self.confidence,
        }


def _request_id() -> str:
    return str(getattr(g, "request_id", "")) if has_request_context() else ""


# Built once: every text runs two of these, and building a statement (values, cache key) costs
# more than executing it. The column values come in the parameters of each execute.
_START = messages.insert().returning(messages.c.id)
_ANSWERED = messages.insert()
_FINISH = messages.update().where(messages.c.id == bindparam("row_id"))


def _received(phone: str, outcome: Outcome, sid: str | None, body: str | None) -> dict[str, Any]:
    return {
        "received_at": db.now(),
        "message_sid": sid or None,
        "phone": phone,
        "phone_masked": mask(phone),
        "body": body,
        "outcome": outcome,
        "request_id": _request_id(),
    }


def start(
    conn: Connection, phone: str, outcome: Outcome, sid: str | None = None, body: str | None = None
) -> int:
    """Insert a message row; IntegrityError when `sid` was seen before."""
    row_id: int = conn.execute(_START, _received(phone, outcome, sid, body)).scalar_one()
    return row_id


def answered(conn: Connection, phone: str, sid: str, body: str, answer: Answer) -> None:
    """Insert a message row already answered (nothing ran); IntegrityError when `sid` was seen before."""
    conn.execute(_ANSWERED, _received(phone, answer.outcome, sid, body) | answer.columns())


def record(
    engine: Engine, phone: str, outcome: Outcome, sid: str | None = None, body: str | None = None
) -> int:
    """`start` in a transaction of its own (rejected, unauthorized and duplicate messages)."""
    with engine.begin() as conn:
        return start(conn, phone, outcome, sid=sid, body=body)


def finish(conn: Connection, row_id: int, answer: Answer) -> None:
    """Record the answer of the row `start` inserted."""
    conn.execute(_FINISH, {"row_id": row_id} | answer.columns())


def first_answer(conn: Connection, sid: str) -> Any:
    """(reply, received_at) of the first delivery of this MessageSid, or None."""
    return conn.execute(
        select(messages.c.reply, messages.c.received_at).where(messages.c.message_sid == sid)
    ).first()


def first_delivery(conn: Connection, sid: str) -> Any:
    """(id, outcome, reply, received_at) of the first delivery of this MessageSid, or None."""
    m = messages.c
    return conn.execute(select(m.id, m.outcome, m.reply, m.received_at).where(m.message_sid == sid)).first()


def abandon(conn: Connection, row_id: int, reply: str, before: float) -> bool:
    """Finish a row still processing since before `before` as an error answered `reply`.

    False when it was answered meanwhile (or another retry abandoned it first).
    """
    m = messages.c
    result = conn.execute(
        update(messages)
        .where(m.id == row_id, m.outcome == Outcome.PROCESSING, m.received_at < before)
        .values(outcome=Outcome.ERROR, reply=reply, command="interrupted")
    )
    return result.rowcount == 1


def abandon_stale(conn: Connection, reply: str, before: float) -> int:
    """Finish every row still processing since before `before` as an error answered `reply`."""
    m = messages.c
    result = conn.execute(
        update(messages)
        .where(m.outcome == Outcome.PROCESSING, m.received_at < before)
        .values(outcome=Outcome.ERROR, reply=reply, command="interrupted")
    )
    return result.rowcount


def prune(conn: Connection, before: float, batch: int) -> int:
    """Delete up to `batch` rows received before `before`."""
    return db.delete_batch(conn, messages.c.id, messages.c.received_at < before, batch=batch)


def newest(
    conn: Connection,
    limit: int,
    before: tuple[float, int] | None = None,
    phone: str | None = None,
    command: str | None = None,
    outcome: str | None = None,
    since: float | None = None,
    until: float | None = None,
) -> list[Any]:
    """Up to `limit` rows, newest first, strictly before (received_at, id) `before`."""
    m = messages.c
    equal = [(m.phone, phone), (m.command, command), (m.outcome, outcome)]
    conditions = db.newest_first(m.received_at, m.id, before, since, until, equal)
    query = (
        select(
            m.id,
            m.received_at,
            m.phone,
            m.phone_masked,
            m.body,
            m.command,
            m.canonical,
            m.confidence,
            m.reply,
            m.segments,
            m.latency_ms,
            m.outcome,
        )  # fmt: skip
        .where(*conditions)
        .order_by(m.received_at.desc(), m.id.desc())
        .limit(limit)
    )
    return list(conn.execute(query))


def received_between(conn: Connection, edges: list[float]) -> list[int]:
    """Texts received in each interval [edges[i], edges[i + 1])."""
    return db.bucket_counts(conn, messages.c.received_at, edges)


def reply_segments(conn: Connection, since: float) -> tuple[int, int]:
    """(texts received, reply segments sent) from `since` on."""
    m = messages.c
    row = conn.execute(
        select(func.count(), func.coalesce(func.sum(m.segments), 0)).where(m.received_at >= since)
    ).one()
    return int(row[0]), int(row[1])
