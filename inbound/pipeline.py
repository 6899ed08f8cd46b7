"""One inbound SMS from a verified Twilio request to its reply, recorded at every step.

Order: authorized number -> stored (idempotency by MessageSid) -> rate limit -> command ->
composer -> audit. The message row is written before any work so nothing accepted is lost, and a
Twilio retry of the same MessageSid gets the first answer again instead of a second run.

The rate limit is for queries: it protects backends and SMS cost. Handling alerts (ack, snooze,
silence, unsilence, resolve, yes, no: commands registered `unlimited`) is neither counted nor
held back, so the command is resolved before the limit is asked.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import replace
from typing import Any

from sqlalchemy.exc import IntegrityError

from command_processor import Command, CommandProcessor
from conversation import composer, continuations
from conversation.resolver import Reading
from conversation.vocabulary import OPT_OUT, RESERVED
from core import db
from core.timeutil import humanize
from inbound import audit
from inbound.audit import Answer, Outcome
from rate_limiter import Decision
from security import allows, mask, role_of
from services import Services

logger = logging.getLogger(__name__)
audit_log = logging.getLogger("operator.audit")

# Bodies longer than this are cut before matching; no command needs more.
MAX_BODY = 640
# gunicorn kills a worker that takes longer than its timeout (30 s at most), so a message still
# `processing` after this long has lost its worker and will never be answered by it.
STALE_AFTER = 30.0
# A retry waits at most this long for the first delivery's answer (Twilio waits 15 s in all).
RETRY_WAIT = 10.0
INTERRUPTED = (
    "Operator was interrupted before answering your last message; it may not have run. Text it again."
)
STILL_WORKING = "Operator is still working on your last message. If no answer comes, text it again."


def handle(services: Services, phone: str, sid: str, body: str) -> Answer:
    """The reply to one verified inbound SMS."""
    started = time.monotonic()
    engine, settings = services.engine, services.settings
    role = role_of(settings, phone)
    if role is None:
        audit.record(engine, phone, Outcome.UNAUTHORIZED)
        audit.COMMANDS.labels("none", Outcome.UNAUTHORIZED).inc()
        audit_log.info("unauthorized sender %s", mask(phone))
        return Answer(None, Outcome.UNAUTHORIZED)

    # An emoji-only text keeps its emoji, so the reply can say emoji are not read (not "empty").
    body = composer.normalize(body or "")[:MAX_BODY] or composer.normalize(body or "", emoji=True)[:MAX_BODY]
    keyword = twilio_keyword(body)
    processor = CommandProcessor(services)
    reading = processor.interpret(body) if keyword is None else None
    cmd = processor.registry.commands[reading.name] if reading and reading.name else None
    counted = reading is not None and not _handles_alerts(cmd, role)
    limiter = services.limiter
    # Counted in the same transaction as the stored message when the counters live in the
    # database: a retry (duplicate MessageSid) rolls back before it counts.
    counted_here = counted and limiter.in_database
    # An answer that runs nothing (a Twilio keyword, help, a limit notice) is stored with its
    # text in one transaction; anything else is stored first, run, then finished, so a text
    # whose run dies is still on record.
    early: tuple[Answer, list[str] | None] | None = None
    if reading is None:
        early = _keyword_reply(phone, keyword or "")
    elif cmd is not None and cmd.instant and reading.runner_up is None and (counted_here or not counted):
        early = _respond(services, processor, reading, phone, role, body)
    decision = None
    try:
        with engine.begin() as conn:
            if counted_here:
                decision = limiter.hit(phone, conn)
                if not decision.allowed:
                    early = _limited(settings.rate_limit, decision), None
            if early is None:
                row_id = audit.start(conn, phone, Outcome.PROCESSING, sid=sid, body=body)
            else:
                reply, parts = early
                reply = replace(reply, latency_ms=_since(started))
                audit.answered(conn, phone, sid, body, reply)
                if parts is not None:
                    continuations.save(conn, phone, parts)
    except IntegrityError:
        return _duplicate(services, phone, sid, body)

    if early is None:
        if counted and decision is None:
            decision = limiter.hit(phone)
        if decision is not None and not decision.allowed:
            reply, parts = _limited(settings.rate_limit, decision), None
        else:
            assert reading is not None  # texts read as nothing (Twilio keywords) were answered early
            reply, parts = _respond(services, processor, reading, phone, role, body)
        reply = replace(reply, latency_ms=_since(started))
        # The reply's audit and its continuation in one transaction (one round trip less).
        with engine.begin() as conn:
            if parts is not None:
                continuations.save(conn, phone, parts)
            audit.finish(conn, row_id, reply)
    if reply.outcome == Outcome.RATE_LIMITED:
        audit.RATE_LIMITED.inc()
    audit.COMMANDS.labels(reply.command or "none", reply.outcome).inc()
    audit.REPLY_LATENCY.observe((reply.latency_ms or 0.0) / 1000)
    audit_log.info(
        "from=%s command=%s outcome=%s segments=%s",
        mask(phone),
        reply.command or "-",
        reply.outcome,
        reply.segments,
    )
    return reply


def _since(started: float) -> float:
    """Milliseconds from `started` (time.monotonic) to now."""
    return (time.monotonic() - started) * 1000


def close_interrupted(services: Services) -> int:
    """Close the texts whose request stored them and then died (its store failed mid-way, or its
    process was killed) and that no Twilio retry came to close; a worker job."""
    with services.engine.begin() as conn:
        closed = audit.abandon_stale(conn, INTERRUPTED, db.now() - STALE_AFTER)
    if closed:
        logger.error(
            "%d message(s) were left unanswered by a request that died; closed as interrupted", closed
        )
    return closed


def twilio_keyword(body: str) -> str | None:
    """STOP, START and the other words Twilio acts on itself, or None."""
    words = body.strip().lower().strip("!.?")
    return words if words in RESERVED else None


def _handles_alerts(cmd: Command | None, role: str) -> bool:
    """An alert command the sender may run: never rate-limited (a viewer's 'ack' is counted)."""
    return cmd is not None and cmd.unlimited and allows(role, cmd.role)


def _keyword_reply(phone: str, keyword: str) -> tuple[Answer, None]:
    # Twilio has already acted on STOP/START; an answer would not be delivered anyway.
    opted_out = keyword in OPT_OUT
    if opted_out:
        logger.error(
            "%s opted out at Twilio: Operator can no longer text them (START undoes it)", mask(phone)
        )
    return Answer(None, Outcome.OK, "optout" if opted_out else "optin"), None


def _limited(limit: str, decision: Decision) -> Answer:
    """One notice per window, naming the limit and that alert handling still works; then silence."""
    if not decision.notify:
        return Answer(None, Outcome.RATE_LIMITED)
    wait = humanize(math.ceil(decision.retry_after / 60) * 60)
    text = (
        f"Query limit reached ({limit}): queries resume in {wait}. "
        "ack, snooze, silence, resolve, yes and no always work."
    )
    text = composer.fit(text)
    return Answer(text, Outcome.RATE_LIMITED, segments=composer.segments(text))


def _respond(
    services: Services,
    processor: CommandProcessor,
    reading: Reading,
    phone: str,
    role: str,
    body: str,
) -> tuple[Answer, list[str] | None]:
    """The reply, and the parts to keep for MORE (None: leave the stored ones alone)."""
    result = processor.run(body, phone, role, reading)
    settings = services.settings
    outcome = Outcome.OK if result.outcome == "ok" else Outcome.ERROR
    if isinstance(result.reply, composer.Part):
        return Answer(
            result.reply,
            outcome,
            result.command,
            composer.segments(result.reply),
            result.canonical,
            result.confidence,
        ), None
    parts = composer.split(result.reply, settings.sms_max_segments, settings.sms_emoji)
    return Answer(
        parts[0], outcome, result.command, composer.segments(parts[0]), result.canonical, result.confidence
    ), parts


def _duplicate(services: Services, phone: str, sid: str, body: str) -> Answer:
    """A Twilio retry: answer what the first delivery answered, without running anything.

    A first delivery still running is waited for briefly; one whose worker died (still
    `processing` long after) is closed with a plain answer, so no retry ever runs it twice.
    """
    engine = services.engine
    audit.record(engine, phone, Outcome.DUPLICATE, body=body)
    audit.COMMANDS.labels("none", Outcome.DUPLICATE).inc()
    first, text = _first_answer(services, sid)
    audit_log.info(
        "duplicate MessageSid from %s (first seen %s ago%s)",
        mask(phone),
        humanize(db.now() - first.received_at) if first else "?",
        ", still running" if text == STILL_WORKING else ", its worker died" if text == INTERRUPTED else "",
    )
    return Answer(text, Outcome.DUPLICATE, segments=composer.segments(text or ""))


def _first_answer(services: Services, sid: str) -> tuple[Any, str | None]:
    """The first delivery of `sid` and the answer to give its retry."""
    engine = services.engine
    waited_until: float | None = None
    while True:
        with engine.connect() as conn:
            first = audit.first_delivery(conn, sid)
        if first is None or first.outcome != Outcome.PROCESSING:
            return first, first.reply if first else None
        now = db.now()
        if now - first.received_at >= STALE_AFTER:
            with engine.begin() as conn:
                if audit.abandon(conn, first.id, INTERRUPTED, now - STALE_AFTER):
                    logger.error("a message was left unanswered by a worker that died; its retry was told so")
                    return first, INTERRUPTED
            continue  # answered (or abandoned by another retry) meanwhile: read it again
        if waited_until is None:
            # Until the first should have answered (REPLY_DEADLINE), within the retry's own budget.
            expected = first.received_at + services.settings.reply_deadline + 1.0 - now
            waited_until = time.monotonic() + min(max(expected, 0.0), RETRY_WAIT)
        if time.monotonic() >= waited_until:
            return first, STILL_WORKING
        time.sleep(0.1)
