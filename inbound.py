"""One inbound SMS from a verified Twilio request to its reply, recorded at every step.

Order: authorized number -> stored (idempotency by MessageSid) -> rate limit -> command ->
composer -> audit. The message row is written before any work so nothing accepted is lost, and a
Twilio retry of the same MessageSid gets the first answer again instead of a second run.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

from flask import g, has_request_context
from sqlalchemy import bindparam, select
from sqlalchemy.exc import IntegrityError

import composer
import metrics
import prepared
import store
from command_processor import RESERVED, CommandProcessor
from pages import PageStore
from prepared import Prepared, Tx
from security import mask, role_of
from timeutil import humanize

logger = logging.getLogger(__name__)
audit_log = logging.getLogger("operator.audit")

# Bodies longer than this are cut before matching; no command needs more.
MAX_BODY = 640


@dataclass(frozen=True)
class Reply:
    text: str | None  # None: answer with an empty <Response/>, no SMS
    outcome: str
    command: str = ""
    segments: int = 0


def _request_id() -> str:
    return getattr(g, "request_id", "") if has_request_context() else ""


# Built once and run on the driver (prepared.py): every message pays for these two transactions.
_FIELDS = ["received_at", "message_sid", "phone", "phone_masked", "body", "outcome", "request_id"]
_INSERT = Prepared(store.messages.insert().returning(store.messages.c.id), keys=_FIELDS)
_FINISH = Prepared(
    store.messages.update().where(store.messages.c.id == bindparam("row_id")),
    keys=["command", "reply", "segments", "latency_ms", "outcome"],
)


def record(engine, phone: str, outcome: str, sid: str | None = None, body: str | None = None) -> int:
    """Insert a message row; raise IntegrityError when `sid` was seen before."""
    values = {
        "received_at": store.now(),
        "message_sid": sid,
        "phone": phone,
        "phone_masked": mask(phone),
        "body": body,
        "outcome": outcome,
        "request_id": _request_id(),
    }
    with prepared.write(engine) as tx:
        return _insert(tx, values)


def _insert(tx: Tx, values: dict) -> int:
    return _INSERT.run(tx, values)[0][0]


def _finish(engine, row_id: int, reply: Reply, started: float, phone: str, pages: list[str] | None) -> None:
    """Audit the reply and keep its continuation pages, in one transaction (one round trip less)."""
    latency = (time.monotonic() - started) * 1000
    values = {
        "row_id": row_id,
        "command": reply.command,
        "reply": reply.text,
        "segments": reply.segments,
        "latency_ms": latency,
        "outcome": reply.outcome,
    }
    with prepared.write(engine) as tx:
        if pages is not None:
            PageStore.save_in(tx, phone, pages)
        _FINISH.run(tx, values)
    metrics.COMMANDS.labels(reply.command or "none", reply.outcome).inc()
    metrics.REPLY_LATENCY.observe(latency / 1000)


def handle(services, phone: str, sid: str, body: str) -> Reply:
    """The reply to one verified inbound SMS."""
    started = time.monotonic()
    engine, settings = services.engine, services.settings
    role = role_of(settings, phone)
    if role is None:
        record(engine, phone, "unauthorized")
        metrics.COMMANDS.labels("none", "unauthorized").inc()
        audit_log.info("unauthorized sender %s", mask(phone))
        return Reply(None, "unauthorized")

    body = composer.normalize(body or "")[:MAX_BODY]
    keyword = _twilio_keyword(body)
    limiter = services.limiter
    decision = None
    values = dict(received_at=store.now(), message_sid=sid or None, phone=phone, phone_masked=mask(phone))
    values.update(body=body, outcome="processing", request_id=_request_id())
    try:
        with prepared.write(engine) as tx:
            row_id = _insert(tx, values)
            # Counted in the same transaction as the stored message when the counters live in
            # the database: a retry (duplicate MessageSid) rolls back before it counts.
            if keyword is None and limiter.in_database:
                decision = limiter.hit(phone, tx)
    except IntegrityError:
        return _duplicate(services, phone, sid, body)
    if keyword is None and decision is None:
        decision = limiter.hit(phone)

    reply, pages = _respond(services, phone, role, body, keyword, decision)
    _finish(engine, row_id, reply, started, phone, pages)
    audit_log.info(
        "from=%s command=%s outcome=%s segments=%s",
        mask(phone),
        reply.command or "-",
        reply.outcome,
        reply.segments,
    )
    return reply


def _twilio_keyword(body: str) -> str | None:
    """STOP, START and the other words Twilio acts on itself, or None."""
    words = body.strip().lower().strip("!.?")
    return words if words in RESERVED else None


def _respond(
    services, phone: str, role: str, body: str, keyword: str | None, decision
) -> tuple[Reply, list[str] | None]:
    """The reply, and the pages to keep for MORE (None: leave the stored pages alone)."""
    if keyword is not None:
        # Twilio has already acted on STOP/START; an answer would not be delivered anyway.
        if keyword in ("stop", "stopall", "unsubscribe", "cancel", "end", "quit"):
            logger.error(
                "%s opted out at Twilio: Operator can no longer text them (START undoes it)", mask(phone)
            )
        return Reply(None, "ok", "optout" if keyword != "start" else "optin"), None

    if not decision.allowed:
        metrics.RATE_LIMITED.inc()
        if not decision.notify:
            return Reply(None, "rate_limited"), None
        minutes = max(1, math.ceil(decision.retry_after / 60))
        text = f"Slow down: rate limit reached. Try again in {minutes} min."
        return Reply(text, "rate_limited", segments=composer.segments(text)), None

    outcome = CommandProcessor(services).run(body, phone, role)
    settings = services.settings
    result = "ok" if outcome.outcome == "ok" else "error"
    if isinstance(outcome.reply, composer.Page):
        return Reply(outcome.reply, result, outcome.command, composer.segments(outcome.reply)), None
    pages = composer.paginate(outcome.reply, settings.sms_max_segments, settings.sms_emoji)
    return Reply(pages[0], result, outcome.command, composer.segments(pages[0])), pages


def _duplicate(services, phone: str, sid: str, body: str) -> Reply:
    """A Twilio retry: answer what the first delivery answered, without running anything."""
    with services.engine.connect() as conn:
        first = conn.execute(
            select(store.messages.c.reply, store.messages.c.received_at).where(
                store.messages.c.message_sid == sid
            )
        ).first()
    record(services.engine, phone, "duplicate", body=body)
    metrics.COMMANDS.labels("none", "duplicate").inc()
    audit_log.info(
        "duplicate MessageSid from %s (first seen %s ago)",
        mask(phone),
        humanize(store.now() - first.received_at) if first else "?",
    )
    text = first.reply if first else None
    return Reply(text, "duplicate", segments=composer.segments(text or ""))
