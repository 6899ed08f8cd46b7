"""POST /sms: Twilio's webhook for an inbound text, answered with TwiML.

Always TwiML: 403 for a bad signature, 400 for a signed form Twilio would not send (a replay
re-split through the signature scheme), with nothing stored or run for either (STYLE 8). Only an
authorized phone ever gets an error text; strangers get an empty <Response/>, whatever happens.
"""

from __future__ import annotations

import logging
import re
from functools import lru_cache

from flask import Blueprint, Response, current_app, g, request
from sqlalchemy.exc import OperationalError
from twilio.twiml.messaging_response import MessagingResponse

import security
from core import db
from inbound import pipeline
from security import role_of
from services import Services

logger = logging.getLogger(__name__)
bp = Blueprint("inbound", __name__)

STORE_DOWN = "Operator cannot reach its database right now. Try again shortly."
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def twiml(text: str | None, status: int = 200) -> Response:
    return Response(_twiml_body(text or ""), status=status, mimetype="application/xml")


# Cached: the same replies recur (help, refusals, "nothing more", limit notices) and the library's
# ElementTree serialization costs about as much as a database transaction.
@lru_cache(maxsize=512)
def _twiml_body(text: str) -> str:
    """The TwiML document answering `text` (an empty <Response/> for '')."""
    response = MessagingResponse()
    if text:
        response.message(text)
    return str(response)


def _field(name: str, size: int) -> str:
    """A form field fit for a column: no control characters (PostgreSQL refuses NUL), bounded."""
    return _CONTROL.sub("", request.form.get(name, ""))[:size]


@bp.post("/sms")
def sms() -> Response:
    svc: Services = current_app.extensions["operator"]
    refused = security.refusal(request, svc.settings, security.INBOUND_FIELDS, required=("From",))
    if refused:
        return twiml(None, refused)
    phone = _field("From", 32)
    g.answerable = role_of(svc.settings, phone) is not None
    if not db.ensure_db(svc.engine, svc.settings.migrate_on_start):
        logger.error("answering /sms without running it: store unreachable")
        return twiml(STORE_DOWN if g.answerable else None)
    sid = security.message_sid(request)
    try:
        reply = pipeline.handle(svc, phone, sid, request.form.get("Body", ""))
    except OperationalError:
        logger.error("store failed while answering /sms", exc_info=True)
        return twiml(STORE_DOWN if g.answerable else None)
    return twiml(reply.text)


def internal_error_reply() -> Response:
    """What /sms answers when Operator itself failed: a short text for a known phone, else nothing."""
    if not g.get("answerable"):
        # Nothing for an unverified caller or a stranger, not even an error text.
        return twiml(None, 500)
    # Twilio would only log a 500; a short text tells the engineer Operator itself is broken.
    return twiml(f"Operator hit an internal error (ref {g.get('request_id', '-')}). Try again shortly.")
