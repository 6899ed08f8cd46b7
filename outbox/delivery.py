"""POST /sms/status: Twilio's StatusCallback, recording what happened to each text we sent.

Twilio posts queued -> sent -> delivered (or undelivered/failed with an ErrorCode), signed like
every webhook, and not always in order: a late "sent" must not overwrite "delivered". Unsigned
reports get 403 and signed forms Twilio would not send 400, and change nothing (security.refusal).
"""

from __future__ import annotations

import logging

from flask import Blueprint, Response, current_app, request
from sqlalchemy import Engine, select, update

import security
from core import db
from outbox.backends import STATUS_PATH
from outbox.queue import Delivery, outbox
from security import mask
from services import Services

logger = logging.getLogger(__name__)
bp = Blueprint("delivery", __name__)

# Later states outrank earlier ones; the three outcomes are final.
RANK = {
    "accepted": 0,
    "scheduled": 0,
    "queued": 1,
    "sending": 2,
    "sent": 3,
    "delivered": 4,
    "undelivered": 4,
    "failed": 4,
    "read": 5,
}
OUTCOMES = ("delivered", "undelivered", "failed")


def record(engine: Engine, sid: str, status: str, error_code: str = "") -> bool:
    """Apply one status report to the outbox rows sent as this sid; False when ignored.

    Several rows share a sid when new-alert pages went out together in one text.
    """
    o = outbox.c
    with engine.begin() as conn:
        rows = conn.execute(
            select(o.id, o.delivery_status, o.to_number).where(o.provider_sid == sid).with_for_update()
        ).all()
        if not rows:
            logger.info("status %s for unknown message %s ignored", status, sid)
            return False
        newer = [r.id for r in rows if RANK[status] > RANK.get(r.delivery_status or "", -1)]
        if not newer:
            logger.info(
                "out-of-order status %s after %s for %s ignored", status, rows[0].delivery_status, sid
            )
            return False
        values = {"delivery_status": status, "delivery_updated_at": db.now()}
        if status in OUTCOMES:
            values["status"] = Delivery(status)
        if error_code:
            values["error_code"] = error_code
        conn.execute(update(outbox).where(o.id.in_(newer)).values(**values))
    if status in ("undelivered", "failed"):
        logger.warning("text %s to %s %s (error %s)", sid, mask(rows[0].to_number), status, error_code or "-")
    return True


@bp.post(STATUS_PATH)
def status_callback() -> Response:
    svc: Services = current_app.extensions["operator"]
    refused = security.refusal(request, svc.settings, security.STATUS_FIELDS, required=())
    if refused:
        return Response("", status=refused)
    sid = security.message_sid(request)
    status = (request.form.get("MessageStatus") or request.form.get("SmsStatus") or "").lower()
    error_code = request.form.get("ErrorCode") or ""
    if status not in RANK:
        # A status Twilio added since (or none): acknowledged, since a retry will not improve it.
        logger.info("status callback with an unknown MessageStatus ignored")
        return Response("", status=204)
    record(svc.engine, sid, status, error_code)
    return Response("", status=204)
