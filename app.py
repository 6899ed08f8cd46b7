"""The Flask app factory: settings, services, and each package's routes and CLI commands.

gunicorn runs `app:create_app()`; `.env` is loaded here, at the entry point. Routes arrive with
the package that owns them (inbound: /sms, outbox: /sms/status, incidents: /webhook/*,
heartbeats: /heartbeat/<name>, integrations: /integrations/<name>, /v2/*, voice: /voice/*, dashboard: /dashboard).
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Iterator

import click
from dotenv import load_dotenv
from flask import Blueprint, Flask, Response, current_app, g, jsonify, request
from prometheus_client.core import GaugeMetricFamily, Metric
from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import InternalServerError

import alerting
import commands  # noqa: F401 - registers the commands
import config
import dashboard
import heartbeats
import inbound
import incidents
import integrations
import oncall
import outbox
import voice
import worker
from config import ConfigError, Settings
from core import db, metrics
from core.cli import db_command
from inbound.routes import internal_error_reply
from logging_config import configure_logging
from monitors.checkup import check_command
from outbox import queue
from security import ForwardedFor, log_refusal, may_read_metrics
from services import Services, build_services
from worker import liveness

logger = logging.getLogger(__name__)
bp = Blueprint("operator", __name__)


def services() -> Services:
    svc: Services = current_app.extensions["operator"]
    return svc


def _store_problem() -> tuple[Response, int] | None:
    """None when the store answers and takes writes; else the 503 that says which it does not."""
    engine = services().engine
    if not (db.ping(engine) and db.ensure_db(engine, services().settings.migrate_on_start)):
        return jsonify(status="error", store="unreachable"), 503
    reason = db.cannot_write(engine, liveness.probe_write)
    if reason:
        return jsonify(
            status="error", store="cannot write", message=f"the store refuses writes: {reason}"
        ), 503
    return None


@bp.get("/livez")
def livez() -> tuple[Response, int]:
    """This web process and its store answer and take writes: for load balancers."""
    return _store_problem() or (jsonify(status="ok", store="ok"), 200)


@bp.get("/healthz")
def healthz() -> tuple[Response, int]:
    """The whole pipeline: the store (answering and writing), and a worker recent enough to send pages."""
    problem = _store_problem()
    if problem is not None:
        return problem
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
def prometheus_metrics() -> Response | tuple[Response, int]:
    if not may_read_metrics(request, services().settings):
        log_refusal(request, "not this host, and no METRICS_TOKEN")
        message = "/metrics is served to this host, or with METRICS_TOKEN as a bearer token"
        return jsonify(status="error", message=message), 403
    body, content_type = metrics.exposition([current_app.extensions["operator.store_metrics"]])
    return Response(body, mimetype=content_type.split(";")[0], content_type=content_type)


class StoreCollector:
    """Outbox depth, sent/failed by error code, delivery outcomes and rule states, read from the store.

    The worker is its own process (maybe on another host), so what it does is read back from the
    store. The readings are kept `ttl` seconds and refreshed by one scrape at a time (others get
    the last readings meanwhile): counting a large outbox costs hundreds of milliseconds, and a
    scraper (or anyone who can reach /metrics) must not be able to spend that on every request.
    """

    def __init__(self, engine: Engine, ttl: float):
        self.engine, self.ttl = engine, ttl
        self._refreshing = threading.Lock()
        self._families: list[Metric] = []
        self._read_at = 0.0

    def collect(self) -> Iterator[Metric]:
        if not self._families or time.monotonic() - self._read_at >= self.ttl:
            # Without readings yet, wait for the scrape taking them; with some, serve those.
            if self._refreshing.acquire(blocking=not self._families):
                try:
                    if not self._families or time.monotonic() - self._read_at >= self.ttl:
                        self._refresh()
                finally:
                    self._refreshing.release()
        age = GaugeMetricFamily(
            "operator_store_metrics_age_seconds", "How old the store readings below are (they are cached)"
        )
        if self._families:
            age.add_metric([], time.monotonic() - self._read_at)
            yield from self._families
        yield age

    def _refresh(self) -> None:
        try:
            with self.engine.connect() as conn:
                counts = queue.counts(conn)
                states = alerting.states(conn)
        except SQLAlchemyError:
            # /metrics still answers with the process counters (and the last readings, if any).
            logger.error("could not read the store for /metrics: store unreachable")
            return
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
        self._families = [depth, by_status, failed, delivery, rules]
        self._read_at = time.monotonic()


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
    # Built for a `flask` command (a click context is open): start-up lines stay off the console
    # unless the command shows them (the worker, `db upgrade`, `sms -v`); the file log has them.
    configure_logging(settings, quiet_console=click.get_current_context(silent=True) is not None)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = 1024 * 1024
    if settings.proxy_hops:
        app.wsgi_app = ForwardedFor(  # type: ignore[method-assign]
            app.wsgi_app, settings.proxy_hops, settings.proxy_addresses
        )
    app.extensions["operator"] = build_services(settings)
    app.extensions["operator.store_metrics"] = StoreCollector(
        app.extensions["operator"].engine, settings.metrics_cache_ttl
    )
    if not settings.public_url:
        logger.error(
            "PUBLIC_URL is not set: every Twilio request will be refused (403); set it to the base "
            "URL Twilio calls, e.g. https://ops.example.com"
        )
    app.before_request(_assign_request_id)
    app.register_error_handler(500, _internal_error)
    app.register_blueprint(bp)
    inbound.init_app(app)
    outbox.init_app(app)
    incidents.init_app(app)
    heartbeats.init_app(app)
    integrations.init_app(app)
    voice.init_app(app)
    oncall.init_app(app)
    worker.init_app(app)
    dashboard.init_app(app)
    app.cli.add_command(check_command)
    app.cli.add_command(db_command)
    logger.info(
        "Operator ready (pid %d, store %s)", os.getpid(), make_url(settings.database_url).get_backend_name()
    )
    return app
