"""POST /voice/answer, /voice/gather and /voice/status: one call about one alert, as Twilio plays it.

Twilio fetches the answer URL once the callee picks up (with AnsweredBy, machine detection being
on): a machine gets a hang-up, a person hears the alert and "press 4 to acknowledge, 6 to
resolve, 1 to escalate, star to repeat". The key pressed acts as the called number, which must
be an authorized responder. Every URL carries ?call=<id>, which Twilio signs with the rest; a
callback (keypress or status) acts on that call only when its CallSid is the one recorded for it.
Each outcome is settled once in outbox.calls and noted with the alert (`voice:call:<id>:<outcome>`).
"""

from __future__ import annotations

import logging
import re

from flask import Blueprint, Response, current_app, request
from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError
from twilio.twiml.voice_response import Gather, VoiceResponse

import security
from conversation import composer
from core import db
from incidents import paging, records
from incidents.records import Alert, Status
from oncall.people import display_name
from outbox import calls
from outbox.calls import Call, Outcome
from services import Services

logger = logging.getLogger(__name__)
bp = Blueprint("voice", __name__)

OPTIONS = "Press 4 to acknowledge, 6 to resolve, 1 to escalate, star to repeat."
NOTE_PREFIX = "voice:call:"
# At most nine digits: a larger id is no call of ours, and would overflow PostgreSQL's integer.
_CALL_ID = re.compile(r"\d{1,9}")
# Long enough to reach the keypad after the options end.
GATHER_TIMEOUT = 8


def _twiml(response: VoiceResponse) -> Response:
    return Response(str(response), mimetype="application/xml")


def _goodbye(words: str) -> Response:
    response = VoiceResponse()
    response.say(words)
    response.hangup()
    return _twiml(response)


def _call(svc: Services) -> tuple[Call | None, int]:
    """The call this signed request is about, or the status to refuse it with."""
    refused = security.refusal(request, svc.settings, security.VOICE_FIELDS, required=())
    if refused:
        return None, refused
    call_id = request.args.get("call", "")
    if (
        set(request.args) != {"call"}
        or len(request.args.getlist("call")) != 1
        or not _CALL_ID.fullmatch(call_id)
    ):
        return None, 400
    with svc.engine.connect() as conn:
        call = calls.get(conn, int(call_id))
    if call is None:
        logger.info("voice callback for unknown call #%s ignored", call_id)
    return call, 0


def _note(conn: Connection, call: Call | None) -> None:
    if call is not None and call.alert_id is not None and call.outcome.final:
        records.note(conn, call.alert_id, f"{NOTE_PREFIX}{call.id}:{call.outcome}", db.now())


def notes(conn: Connection, alert_id: int) -> list[str]:
    """The call outcomes recorded with this alert ('voice:call:17:not_reached', ...), oldest first."""
    return records.notes(conn, alert_id, NOTE_PREFIX)


def spoken(alert: Alert | None) -> str:
    """The alert read out: number, name, a short summary."""
    if alert is None:
        return "Operator alert. The alert no longer exists."
    name = composer.normalize(alert.name).strip() or "alert"
    summary = composer.normalize(alert.summary).strip()
    words = f"Operator alert {alert.id}. {name}."
    if summary and summary != alert.name:
        words += f" {summary[:200]}."
    if alert.status != Status.FIRING:
        words += " It is resolved already."
    elif alert.acked_by:
        words += " It is acknowledged already."
    return words


def script(svc: Services, call: Call, alert: Alert | None) -> VoiceResponse:
    """The alert, then one key to press; silence ends the call."""
    response = VoiceResponse()
    action = f"{svc.settings.public_url}{calls.GATHER_PATH}?call={call.id}"
    gather = Gather(num_digits=1, action=action, method="POST", timeout=GATHER_TIMEOUT)
    gather.say(spoken(alert))
    gather.say(OPTIONS)
    response.append(gather)
    response.say("No key pressed. Goodbye.")
    response.hangup()
    return response


@bp.post(calls.ANSWER_PATH)
def answer() -> Response:
    svc: Services = current_app.extensions["operator"]
    call, refused = _call(svc)
    if refused:
        return Response("", status=refused)
    if call is None:
        return _goodbye("Operator does not know this call. Goodbye.")
    form = request.form
    with svc.engine.begin() as conn:
        after = calls.status(conn, call.id, form["CallSid"], form.get("CallStatus") or "in-progress",
                             form.get("AnsweredBy", ""))  # fmt: skip
        _note(conn, after)
        alert = records.get(conn, call.alert_id) if call.alert_id is not None else None
    if after is None or after.outcome is Outcome.NOT_REACHED:
        # A voicemail greeting: leaving the alert there would count as reaching nobody anyway.
        response = VoiceResponse()
        response.hangup()
        return _twiml(response)
    return _twiml(script(svc, after, alert))


@bp.post(calls.GATHER_PATH)
def gather() -> Response:
    svc: Services = current_app.extensions["operator"]
    call, refused = _call(svc)
    if refused:
        return Response("", status=refused)
    if call is None:
        return _goodbye("Operator does not know this call. Goodbye.")
    digits = request.form.get("Digits", "")
    with svc.engine.begin() as conn:
        # Held to the end: two keypresses racing on one call act once (one RESOLVED, not two).
        call = calls.lock_answered(conn, call.id, request.form["CallSid"])
        if call is None:
            return _goodbye("Operator does not know this call. Goodbye.")
        if call.over or call.outcome.final:
            # A keypress replayed after the call ended, or after its one action: it runs nothing.
            return _goodbye("This call is over. Goodbye.")
        alert = records.get(conn, call.alert_id) if call.alert_id is not None else None
        if digits == "*" or digits not in ("1", "4", "6"):
            response = script(svc, call, alert)
            if digits != "*":
                response = _prefixed("That key does nothing.", response)
            return _twiml(response)
        if digits == "1":
            return _settle(
                conn, call, Outcome.ESCALATE, "pressed 1", "Escalating to the next person. Goodbye."
            )
        if not security.allows(security.role_of(svc.settings, call.to_number), "responder"):
            return _goodbye("This number may not acknowledge or resolve alerts. Goodbye.")
        if alert is None:
            return _goodbye("The alert no longer exists. Goodbye.")
        if digits == "4":
            return _ack(conn, svc, call, alert)
        return _resolve(conn, svc, call, alert)


def _prefixed(words: str, script_: VoiceResponse) -> VoiceResponse:
    response = VoiceResponse()
    response.say(words)
    for verb in script_.verbs:
        response.append(verb)
    return response


def _settle(conn: Connection, call: Call, result: Outcome, reason: str, words: str) -> Response:
    if calls.finish(conn, call.id, result, reason):
        _note(conn, calls.get(conn, call.id))
        logger.info("call #%d: %s", call.id, result)
    return _goodbye(words)


def _ack(conn: Connection, svc: Services, call: Call, alert: Alert) -> Response:
    if alert.status != Status.FIRING:
        return _settle(
            conn,
            call,
            Outcome.RESOLVED,
            "already resolved",
            f"Alert {alert.id} is resolved already. Goodbye.",
        )
    if alert.acked_at:
        words = f"Alert {alert.id} was acknowledged already. Goodbye."
    else:
        records.ack(conn, alert.id, call.to_number, db.now())
        words = f"Alert {alert.id} acknowledged. Goodbye."
    return _settle(conn, call, Outcome.ACKED, "pressed 4", words)


def _resolve(conn: Connection, svc: Services, call: Call, alert: Alert) -> Response:
    if alert.status == Status.FIRING:
        closed = records.close(conn, alert.id, by=call.to_number)
        who = display_name(svc.settings, call.to_number)
        paging.send_recovery(conn, closed, svc.settings, by=call.to_number, who=who, delay=False)
        words = f"Alert {alert.id} resolved. Goodbye."
    else:
        words = f"Alert {alert.id} is resolved already. Goodbye."
    return _settle(conn, call, Outcome.RESOLVED, "pressed 6", words)


@bp.errorhandler(SQLAlchemyError)
def _store_down(exc: SQLAlchemyError) -> Response:
    logger.error("voice %s: the store failed (%s)", request.path, exc.__class__.__name__)
    if request.path == calls.STATUS_PATH:
        return Response("", status=503)  # not stored, so not acknowledged
    return _goodbye("Operator cannot reach its database right now. Nothing was changed. Goodbye.")


@bp.post(calls.STATUS_PATH)
def status() -> Response:
    svc: Services = current_app.extensions["operator"]
    call, refused = _call(svc)
    if refused:
        return Response("", status=refused)
    form = request.form
    call_status = (form.get("CallStatus") or "").lower()
    if call is None or call_status not in calls.RANK:
        # Acknowledged all the same: a retry would not make it any more known.
        return Response("", status=204)
    with svc.engine.begin() as conn:
        _note(conn, calls.status(conn, call.id, form["CallSid"], call_status, form.get("AnsweredBy", "")))
    return Response("", status=204)
