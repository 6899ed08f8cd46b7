"""The Flask app factory and its routes: /sms, /healthz, /metrics.

gunicorn runs `app:create_app()`; `.env` is loaded here, at the entry point.
"""

from __future__ import annotations

import logging
import os
import uuid

from flask import Blueprint, Flask, Response, current_app, g, jsonify, request
from twilio.twiml.messaging_response import MessagingResponse
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
from security import is_from_twilio, mask
from services import Services, build_services

logger = logging.getLogger(__name__)
bp = Blueprint("operator", __name__)


def services() -> Services:
    return current_app.extensions["operator"]


def twiml(text: str | None, status: int = 200) -> Response:
    response = MessagingResponse()
    if text:
        response.message(text)
    return Response(str(response), status=status, mimetype="application/xml")


@bp.post("/sms")
def sms() -> Response:
    svc = services()
    phone = request.form.get("From", "")
    if not is_from_twilio(request, svc.settings):
        metrics.SIGNATURE_REJECTIONS.inc()
        inbound.record(svc.engine, phone[:32], "rejected")
        logger.warning("rejected /sms with a missing or wrong signature (from %s)", mask(phone))
        return twiml(None, 403)
    sid = request.form.get("MessageSid") or request.form.get("SmsSid") or ""
    reply = inbound.handle(svc, phone[:32], sid[:64], request.form.get("Body", ""))
    return twiml(reply.text)


@bp.get("/healthz")
def healthz() -> tuple[Response, int]:
    if store.ping(services().engine):
        return jsonify(status="ok", store="ok"), 200
    return jsonify(status="error", store="unreachable"), 503


@bp.get("/metrics")
def prometheus_metrics() -> Response:
    body, content_type = metrics.exposition(services().engine)
    return Response(body, mimetype=content_type.split(";")[0], content_type=content_type)


def _assign_request_id() -> None:
    g.request_id = request.headers.get("I-Twilio-Idempotency-Token", "")[:12] or uuid.uuid4().hex[:12]


def _internal_error(exc: Exception) -> Response | tuple[Response, int]:
    logger.exception("unhandled error on %s", request.path, exc_info=exc)
    if request.path.startswith("/sms"):
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
    return app
