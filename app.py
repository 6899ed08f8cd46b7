"""The Flask app factory and its routes: /sms, /healthz, /metrics.

gunicorn runs `app:create_app()`; `.env` is loaded here, at the entry point.
"""

from __future__ import annotations

import logging
import os
import re
import uuid
from functools import lru_cache

from flask import Blueprint, Flask, Response, current_app, g, jsonify, request
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from twilio.twiml.messaging_response import MessagingResponse
from werkzeug.exceptions import InternalServerError
from werkzeug.middleware.proxy_fix import ProxyFix

import commands  # noqa: F401 - registers the commands
import delivery
import inbound
import metrics
import store
import webhooks
from cli import register_cli
from config import Settings
from logging_config import configure_logging
from security import is_from_twilio, mask, role_of
from services import Services, build_services

logger = logging.getLogger(__name__)
bp = Blueprint("operator", __name__)

STORE_DOWN = "Operator cannot reach its database right now. Try again shortly."
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def services() -> Services:
    return current_app.extensions["operator"]


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
    svc = services()
    phone = _field("From", 32)
    if not is_from_twilio(request, svc.settings):
        metrics.SIGNATURE_REJECTIONS.inc()
        logger.warning("rejected /sms with a missing or wrong signature (from %s)", mask(phone))
        try:
            inbound.record(svc.engine, phone, "rejected")
        except SQLAlchemyError:
            # The 403 matters more than the audit row; the warning above is the record.
            logger.error("could not record a rejected request: store unreachable")
        return twiml(None, 403)
    # Only an authorized phone ever gets an error text; strangers get nothing, whatever happens.
    g.answerable = role_of(svc.settings, phone) is not None
    if not store.ensure_db(svc.engine):
        logger.error("answering /sms without running it: store unreachable")
        return twiml(STORE_DOWN if g.answerable else None)
    sid = _field("MessageSid", 64) or _field("SmsSid", 64)
    try:
        reply = inbound.handle(svc, phone, sid, request.form.get("Body", ""))
    except OperationalError:
        logger.error("store failed while answering /sms", exc_info=True)
        return twiml(STORE_DOWN if g.answerable else None)
    return twiml(reply.text)


@bp.get("/healthz")
def healthz() -> tuple[Response, int]:
    engine = services().engine
    if store.ping(engine) and store.ensure_db(engine):
        return jsonify(status="ok", store="ok"), 200
    return jsonify(status="error", store="unreachable"), 503


@bp.get("/metrics")
def prometheus_metrics() -> Response:
    body, content_type = metrics.exposition(services().engine)
    return Response(body, mimetype=content_type.split(";")[0], content_type=content_type)


def _assign_request_id() -> None:
    g.request_id = request.headers.get("I-Twilio-Idempotency-Token", "")[:12] or uuid.uuid4().hex[:12]


def _internal_error(exc: InternalServerError) -> Response | tuple[Response, int]:
    original = exc.original_exception or exc
    logger.error("unhandled error on %s", request.path, exc_info=original)
    if request.path.startswith("/sms"):
        if not g.get("answerable"):
            # Nothing for an unverified caller or a stranger, not even an error text.
            return twiml(None, 500)
        # Twilio would only log a 500; a short text tells the engineer Operator itself is broken.
        return twiml(f"Operator hit an internal error (ref {g.get('request_id', '-')}). Try again shortly.")
    return jsonify(status="error", message="internal error"), 500


def create_app(settings: Settings | None = None) -> Flask:
    """Build the app; with no settings, read `.env` and the environment."""
    if settings is None:
        from dotenv import load_dotenv

        load_dotenv()
        settings = Settings.from_env(os.environ)
    configure_logging(settings)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = 1024 * 1024
    if settings.proxy_hops:
        hops = settings.proxy_hops
        app.wsgi_app = ProxyFix(
            app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops, x_prefix=hops
        )
    app.extensions["operator"] = build_services(settings)
    app.before_request(_assign_request_id)
    app.register_error_handler(500, _internal_error)
    app.register_blueprint(bp)
    app.register_blueprint(webhooks.bp)
    app.register_blueprint(delivery.bp)
    register_cli(app)
    logger.info(
        "Operator ready (pid %d, store %s)", os.getpid(), make_url(settings.database_url).get_backend_name()
    )
    return app
