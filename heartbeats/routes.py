"""GET or POST /heartbeat/<name>: a ping of the dead man's switch, and Alertmanager's Watchdog.

Order of checks: HEARTBEAT_TOKEN set (else 404) -> token in `Authorization: Bearer` or `?token=`
(401) -> a configured heartbeat (404) -> stored (200), or 503 so a cron job's retry tries again.
The token is compared in constant time and never logged (production.py's access log has no query
strings; logging_config redacts it anywhere else).
"""

from __future__ import annotations

import logging

from flask import Blueprint, Response, current_app, jsonify, request
from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError

from config import Settings
from core import db
from heartbeats import pings
from security import log_refusal, same_secret
from services import Services

logger = logging.getLogger(__name__)
bp = Blueprint("heartbeats", __name__)


def _services() -> Services:
    services: Services = current_app.extensions["operator"]
    return services


def _error(status: int, message: str, **headers: str) -> tuple[Response, int, dict[str, str]]:
    return jsonify(status="error", message=message), status, headers


def _token() -> str:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.args.get("token", "")


# Every method and path under /heartbeat/ gets a JSON answer a cron job's log can show.
_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


@bp.route("/heartbeat/", defaults={"name": ""}, methods=_METHODS)
@bp.route("/heartbeat/<path:name>", methods=_METHODS)
def heartbeat(name: str):
    """A ping: the job named `name` is alive."""
    svc = _services()
    settings = svc.settings
    if request.method not in ("GET", "HEAD", "POST"):
        return _error(405, "use GET or POST", Allow="GET, HEAD, POST")
    if not settings.heartbeat_token:
        return _error(404, "heartbeats are off: set HEARTBEAT_TOKEN (see docs/paging.md)")
    if not same_secret(_token(), settings.heartbeat_token):
        log_refusal(request, "missing or wrong heartbeat token")
        return _error(401, "missing or wrong token", **{"WWW-Authenticate": 'Bearer realm="operator"'})
    found = next((h for h in settings.heartbeats if h.name == name), None)
    if found is None:
        return _error(404, "no heartbeat of that name in the heartbeats: section of the config file")
    try:
        with svc.engine.begin() as conn:
            was_missing = pings.ping(conn, found, settings, db.now())
    except SQLAlchemyError:
        logger.exception("heartbeat %s: store unavailable", name)
        return _error(503, "store unavailable; retry later")
    return jsonify(status="ok", heartbeat=name, was_missing=was_missing)


def watchdog(conn: Connection, alertnames: list[str], settings: Settings, now: float) -> None:
    """Alertmanager's always-firing alerts arrived: each pings the heartbeats that name it."""
    for alertname in dict.fromkeys(alertnames):
        claimed = [h for h in settings.heartbeats if h.watchdog == alertname]
        if not claimed:
            logger.info("Alertmanager's %s arrived; no heartbeat names it (watchdog: %s), so it is dropped",
                        alertname, alertname)  # fmt: skip
        for heartbeat in claimed:
            pings.ping(conn, heartbeat, settings, now)
