"""The Flask app factory: settings, services, and each package's routes and CLI commands.

gunicorn runs `app:create_app()`; `.env` is loaded here, at the entry point. Routes arrive with
the package that owns them (inbound: /sms, outbox: /sms/status, incidents: /webhook/*).
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator

from dotenv import load_dotenv
from flask import Blueprint, Flask, Response, current_app, g, jsonify, request
from prometheus_client.core import GaugeMetricFamily, Metric
from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from werkzeug.exceptions import InternalServerError
from werkzeug.middleware.proxy_fix import ProxyFix

import alerting
import commands  # noqa: F401 - registers the commands
import config
import inbound
import incidents
import outbox
import worker
from config import ConfigError, Settings
from core import db, metrics
from core.cli import db_command
from inbound.routes import internal_error_reply
from logging_config import configure_logging
from monitors.checkup import check_command
from outbox import queue
from services import Services, build_services

logger = logging.getLogger(__name__)
bp = Blueprint("operator", __name__)


def services() -> Services:
    svc: Services = current_app.extensions["operator"]
    return svc


@bp.get("/healthz")
def healthz() -> tuple[Response, int]:
    engine = services().engine
    if db.ping(engine) and db.ensure_db(engine, services().settings.migrate_on_start):
        return jsonify(status="ok", store="ok"), 200
    return jsonify(status="error", store="unreachable"), 503


@bp.get("/metrics")
def prometheus_metrics() -> Response:
    body, content_type = metrics.exposition([StoreCollector(services().engine)])
    return Response(body, mimetype=content_type.split(";")[0], content_type=content_type)


class StoreCollector:
    """Outbox depth, sent/failed by error code, delivery outcomes and rule states, read from the store.

    The worker is its own process (maybe on another host), so what it does is read back at
    scrape time: always right, whichever process sent or evaluated.
    """

    def __init__(self, engine: Engine):
        self.engine = engine

    def collect(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily("operator_outbox_depth", "Texts waiting to be sent (queued or sending)")
        by_status = GaugeMetricFamily(
            "operator_outbox_messages", "Outbox rows by status and kind", labels=["status", "kind"]
        )
        failed = GaugeMetricFamily(
            "operator_sms_failed_messages",
            "Texts that failed for good, by Twilio error code",
            labels=["code"],
        )
        delivery = GaugeMetricFamily(
            "operator_sms_delivery", "Texts by Twilio's last reported delivery status", labels=["status"]
        )
        rules = GaugeMetricFamily("operator_rule_state", "Alert rules by state", labels=["rule", "state"])
        with self.engine.connect() as conn:
            counts = queue.counts(conn)
            states = alerting.states(conn)
        waiting = (queue.Delivery.QUEUED, queue.Delivery.SENDING)
        depth.add_metric([], sum(n for status, _, n in counts["by_status"] if status in waiting))
        for status, kind, count in counts["by_status"]:
            by_status.add_metric([status, kind], count)
        for code, count in counts["failed"]:
            failed.add_metric([code or "unknown"], count)
        for status, count in counts["delivery"]:
            delivery.add_metric([status], count)
        for rule, state in states:
            for known in alerting.RuleState:
                rules.add_metric([rule, known], 1.0 if state == known else 0.0)
        yield from (depth, by_status, failed, delivery, rules)


def _assign_request_id() -> None:
    g.request_id = request.headers.get("I-Twilio-Idempotency-Token", "")[:12] or uuid.uuid4().hex[:12]


def _internal_error(exc: InternalServerError) -> Response | tuple[Response, int]:
    original = exc.original_exception or exc
    logger.error("unhandled error on %s", request.path, exc_info=original)
    if request.path.startswith("/sms"):
        return internal_error_reply()
    return jsonify(status="error", message="internal error"), 500


def create_app(settings: Settings | None = None) -> Flask:
    """Build the app; with no settings, read `.env` (from the current directory) and the environment.

    Called with no settings it is the entry point (gunicorn, `flask` commands): a bad setting
    then ends the process with one line naming it and status 2 (config.stop), not a traceback.
    """
    if settings is None:
        load_dotenv(os.path.join(os.getcwd(), ".env"))
        try:
            return _build(Settings.from_env(os.environ))
        except ConfigError as exc:
            config.stop(exc)
    return _build(settings)


def _build(settings: Settings) -> Flask:
    configure_logging(settings)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = 1024 * 1024
    if settings.proxy_hops:
        hops = settings.proxy_hops
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops, x_prefix=hops
        )
    app.extensions["operator"] = build_services(settings)
    app.before_request(_assign_request_id)
    app.register_error_handler(500, _internal_error)
    app.register_blueprint(bp)
    inbound.init_app(app)
    outbox.init_app(app)
    incidents.init_app(app)
    worker.init_app(app)
    app.cli.add_command(check_command)
    app.cli.add_command(db_command)
    logger.info(
        "Operator ready (pid %d, store %s)", os.getpid(), make_url(settings.database_url).get_backend_name()
    )
    return app
