"""The Flask app factory: settings, services, and each package's routes and CLI commands.

gunicorn runs `app:create_app()`; `.env` is loaded here, at the entry point. Routes arrive with
the package that owns them (inbound: /sms, outbox: /sms/status, incidents: /webhook/*,
heartbeats: /heartbeat/<name>).
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
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import InternalServerError
from werkzeug.middleware.proxy_fix import ProxyFix

import alerting
import commands  # noqa: F401 - registers the commands
import heartbeats
import inbound
import incidents
import outbox
import worker
from config import Settings
from core import db, metrics
from core.cli import db_command
from inbound.routes import internal_error_reply
from logging_config import configure_logging
from monitors.checkup import check_command
from outbox import queue
from services import Services, build_services
from worker import liveness

logger = logging.getLogger(__name__)
bp = Blueprint("operator", __name__)


def services() -> Services:
    svc: Services = current_app.extensions["operator"]
    return svc


def _store_ok() -> bool:
    engine = services().engine
    return db.ping(engine) and db.ensure_db(engine, services().settings.migrate_on_start)


@bp.get("/livez")
def livez() -> tuple[Response, int]:
    """This web process and its store answer: for load balancers, which must keep sending SMS here."""
    if _store_ok():
        return jsonify(status="ok", store="ok"), 200
    return jsonify(status="error", store="unreachable"), 503


@bp.get("/healthz")
def healthz() -> tuple[Response, int]:
    """The whole pipeline: the store, and a worker whose heartbeat is recent enough to send pages."""
    if not _store_ok():
        return jsonify(status="error", store="unreachable"), 503
    settings, now = services().settings, db.now()
    try:
        with services().engine.connect() as conn:
            workers = liveness.liveness(conn, settings.worker_silent_after, now)
            oldest = queue.oldest_waiting(conn, now)
    except SQLAlchemyError:
        logger.warning("healthz: store failed mid-check", exc_info=True)
        return jsonify(status="error", store="unreachable"), 503
    ago = workers.seconds_ago
    body = {
        "status": "ok" if workers.ok else "error",
        "store": "ok",
        "worker": "ok" if workers.ok else ("never seen" if ago is None else "silent"),
        "workers": workers.workers,
        "worker_heartbeat_seconds_ago": None if ago is None else round(ago, 1),
        "oldest_queued_seconds": None if oldest is None else round(oldest, 1),
    }
    if not workers.ok:
        body["message"] = workers.describe(settings.worker_silent_after)
    return jsonify(body), 200 if workers.ok else 503


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
    """Build the app; with no settings, read `.env` (from the current directory) and the environment."""
    if settings is None:
        load_dotenv(os.path.join(os.getcwd(), ".env"))
        settings = Settings.from_env(os.environ)
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
    heartbeats.init_app(app)
    worker.init_app(app)
    app.cli.add_command(check_command)
    app.cli.add_command(db_command)
    logger.info(
        "Operator ready (pid %d, store %s)", os.getpid(), make_url(settings.database_url).get_backend_name()
    )
    return app
