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

from sqlalchemy.exc import IntegrityError

from command_processor import CommandProcessor
from conversation import composer, continuations
from conversation.vocabulary import OPT_OUT, RESERVED
from core import db
from core.timeutil import humanize
from inbound import audit
from inbound.audit import Outcome
from rate_limiter import Decision
from security import mask, role_of
from services import Services

logger = logging.getLogger(__name__)
audit_log = logging.getLogger("operator.audit")

# Bodies longer than this are cut before matching; no command needs more.
MAX_BODY = 640


@dataclass(frozen=True)
class Reply:
    text: str | None  # None: answer with an empty <Response/>, no SMS
    outcome: Outcome
    command: str = ""
    segments: int = 0
    # What the text was read as, and how surely (None when no command was read: STOP, limits).
    canonical: str | None = None
    confidence: float | None = None


def handle(services: Services, phone: str, sid: str, body: str) -> Reply:
    """The reply to one verified inbound SMS."""
    started = time.monotonic()
    engine, settings = services.engine, services.settings
    role = role_of(settings, phone)
    if role is None:
        audit.record(engine, phone, Outcome.UNAUTHORIZED)
        audit.COMMANDS.labels("none", Outcome.UNAUTHORIZED).inc()
        audit_log.info("unauthorized sender %s", mask(phone))
        return Reply(None, Outcome.UNAUTHORIZED)

    # An emoji-only text keeps its emoji, so the reply can say emoji are not read (not "empty").
    body = composer.normalize(body or "")[:MAX_BODY] or composer.normalize(body or "", emoji=True)[:MAX_BODY]
    keyword = twilio_keyword(body)
    limiter = services.limiter
    decision = None
    try:
        with engine.begin() as conn:
            row_id = audit.start(conn, phone, Outcome.PROCESSING, sid=sid, body=body)
            # Counted in the same transaction as the stored message when the counters live in
            # the database: a retry (duplicate MessageSid) rolls back before it counts.
            if keyword is None and limiter.in_database:
                decision = limiter.hit(phone, conn)
    except IntegrityError:
        return _duplicate(services, phone, sid, body)
    if keyword is None and decision is None:
        decision = limiter.hit(phone)

    reply, parts = _respond(services, phone, role, body, keyword, decision)
    latency = (time.monotonic() - started) * 1000
    # The reply's audit and its continuation in one transaction (one round trip less).
    with engine.begin() as conn:
        if parts is not None:
            continuations.save(conn, phone, parts)
        audit.finish(
            conn,
            row_id,
            reply.command,
            reply.text,
            reply.segments,
            latency,
            reply.outcome,
            reply.canonical,
            reply.confidence,
        )
    audit.COMMANDS.labels(reply.command or "none", reply.outcome).inc()
    audit.REPLY_LATENCY.observe(latency / 1000)
    audit_log.info(
        "from=%s command=%s outcome=%s segments=%s",
        mask(phone),
        reply.command or "-",
        reply.outcome,
        reply.segments,
    )
    return reply


def twilio_keyword(body: str) -> str | None:
    """STOP, START and the other words Twilio acts on itself, or None."""
    words = body.strip().lower().strip("!.?")
    return words if words in RESERVED else None


def _respond(
    services: Services, phone: str, role: str, body: str, keyword: str | None, decision: Decision | None
) -> tuple[Reply, list[str] | None]:
    """The reply, and the parts to keep for MORE (None: leave the stored ones alone)."""
    if keyword is not None:
        # Twilio has already acted on STOP/START; an answer would not be delivered anyway.
        opted_out = keyword in OPT_OUT
        if opted_out:
            logger.error(
                "%s opted out at Twilio: Operator can no longer text them (START undoes it)", mask(phone)
            )
        return Reply(None, Outcome.OK, "optout" if opted_out else "optin"), None

    assert decision is not None  # every message that is not a Twilio keyword was counted
    if not decision.allowed:
        audit.RATE_LIMITED.inc()
        if not decision.notify:
            return Reply(None, Outcome.RATE_LIMITED), None
        minutes = max(1, math.ceil(decision.retry_after / 60))
        text = f"Slow down: rate limit reached. Try again in {minutes} min."
        return Reply(text, Outcome.RATE_LIMITED, segments=composer.segments(text)), None

    result = CommandProcessor(services).run(body, phone, role)
    settings = services.settings
    outcome = Outcome.OK if result.outcome == "ok" else Outcome.ERROR
    if isinstance(result.reply, composer.Part):
        return Reply(
            result.reply,
            outcome,
            result.command,
            composer.segments(result.reply),
            result.canonical,
            result.confidence,
        ), None
    parts = composer.split(result.reply, settings.sms_max_segments, settings.sms_emoji)
    return Reply(
        parts[0], outcome, result.command, composer.segments(parts[0]), result.canonical, result.confidence
    ), parts


def _duplicate(services: Services, phone: str, sid: str, body: str) -> Reply:
    """A Twilio retry: answer what the first delivery answered, without running anything."""
    with services.engine.connect() as conn:
        first = audit.first_answer(conn, sid)
    audit.record(services.engine, phone, Outcome.DUPLICATE, body=body)
    audit.COMMANDS.labels("none", Outcome.DUPLICATE).inc()
    audit_log.info(
        "duplicate MessageSid from %s (first seen %s ago)",
        mask(phone),
        humanize(db.now() - first.received_at) if first else "?",
    )
    text = first.reply if first else None
    return Reply(text, Outcome.DUPLICATE, segments=composer.segments(text or ""))
