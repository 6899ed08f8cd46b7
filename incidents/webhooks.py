"""POST /webhook/alertmanager (and /webhook/prometheus) and /webhook/datadog.

Order of checks: endpoint configured (else 404) -> auth (401) -> body size (413) -> JSON and
shape (400) -> stored with its texts in one transaction (200), or 503 so the sender retries.
Alertmanager and Datadog retry 5xx and drop 4xx, which is why only a store failure is a 5xx.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Callable

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from prometheus_client import Counter
from sqlalchemy import Connection
from sqlalchemy.exc import DataError, IntegrityError, SQLAlchemyError
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound, RequestEntityTooLarge

from config import Settings
from core import db
from incidents import intake
from incidents.sources import Incoming, PayloadError, Source, Status, decode
from incidents.sources.registry import PARSERS
from security import log_refusal, same_secret
from services import Services

logger = logging.getLogger(__name__)
bp = Blueprint("webhooks", __name__, url_prefix="/webhook")

WEBHOOK_EVENTS = Counter(
    "operator_webhook_events_total", "Alert webhook events by source and outcome", ["source", "outcome"]
)


# Takes the alertnames of firing watchdog alerts, in the webhook's transaction (heartbeats.routes).
WatchdogSink = Callable[[Connection, list[str], Settings, float], None]
_SINK = "incidents.watchdog"


def on_watchdog(app: Flask, sink: WatchdogSink) -> None:
    """Hand Alertmanager's always-firing alerts (Settings.watchdog_names) to `sink` instead of paging.

    The heartbeats package registers itself here: it sits above incidents, so incidents cannot
    import it, and a watchdog is a ping to it, never an alert.
    """
    app.extensions[_SINK] = sink


def _services() -> Services:
    services: Services = current_app.extensions["operator"]
    return services


def error(status: int, message: str, **headers: str) -> tuple[Response, int, dict[str, str]]:
    return jsonify(status="error", message=message), status, headers


def accepted(result: intake.IngestResult, **extra: int) -> Response:
    """What a webhook door answers once its events are stored."""
    alerts = list(result.alert_ids)
    return jsonify(
        status="ok", received=result.received, new=result.new, alerts=alerts, texts=result.texts, **extra
    )


def _bearer() -> str:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


def _basic() -> tuple[str, str] | None:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user, password) if sep else None


def _alertmanager_auth_ok(settings: Settings) -> bool:
    token = _bearer()
    if settings.alertmanager_token and token:
        return same_secret(token, settings.alertmanager_token)
    basic = _basic()
    if settings.alertmanager_user and settings.alertmanager_password and basic:
        # Both compared every time so timing does not tell which one was wrong.
        user_ok = same_secret(basic[0], settings.alertmanager_user)
        password_ok = same_secret(basic[1], settings.alertmanager_password)
        return user_ok and password_ok
    return False


def _payload() -> object:
    """The decoded JSON body; PayloadError when it is not strict JSON (incidents.sources.decode)."""
    return decode(request.get_data(cache=False))  # RequestEntityTooLarge past MAX_CONTENT_LENGTH


def _store(source: str, incoming: list[Incoming], watchdogs: list[str]):
    svc = _services()
    sink: WatchdogSink | None = current_app.extensions.get(_SINK)
    for attempt in (1, 2):
        try:
            intake.sort_ahead(svc.engine, incoming, svc.settings)
            with svc.engine.begin() as conn:
                if watchdogs and sink is not None:
                    sink(conn, watchdogs, svc.settings, db.now())
                result = intake.ingest(conn, incoming, svc.settings)
            break
        except IntegrityError:
            # Another worker stored the same event between our check and insert (an HA pair
            # delivering at once); a second pass sees it and counts it as a duplicate.
            if attempt == 2:
                logger.exception("%s webhook: could not store after a retry", source)
                WEBHOOK_EVENTS.labels(source, "store_error").inc()
                return error(503, "store conflict; retry")
        except DataError:
            # A value the database refuses is the payload's problem: a retry would fail forever.
            logger.warning("%s webhook: payload has a value the store cannot hold", source, exc_info=True)
            WEBHOOK_EVENTS.labels(source, "rejected").inc()
            return error(400, "a value in the payload cannot be stored")
        except SQLAlchemyError:
            logger.exception("%s webhook: store unavailable", source)
            WEBHOOK_EVENTS.labels(source, "store_error").inc()
            return error(503, "store unavailable; retry later")
    WEBHOOK_EVENTS.labels(source, "new").inc(result.new)
    WEBHOOK_EVENTS.labels(source, "duplicate").inc(result.received - result.new)
    logger.info(
        "%s webhook: %d alert(s), %d new, records %s, %d text(s) queued",
        source,
        result.received,
        result.new,
        ",".join(f"#{i}" for i in result.alert_ids) or "-",
        result.texts,
    )
    return accepted(result, watchdogs=len(watchdogs))


def _handle(source: str, configured: bool, authorized, parse):
    if not configured:
        return error(404, f"the {source} webhook is off: set its token (see docs/alert-sources.md)")
    if not authorized():
        WEBHOOK_EVENTS.labels(source, "unauthorized").inc()
        log_refusal(request, "missing or wrong credentials")
        return error(401, "missing or wrong credentials", **{"WWW-Authenticate": 'Bearer realm="operator"'})
    try:
        incoming = parse(_payload())
    except RequestEntityTooLarge:
        WEBHOOK_EVENTS.labels(source, "rejected").inc()
        return error(413, "body larger than 1 MiB")
    except PayloadError as exc:
        WEBHOOK_EVENTS.labels(source, "rejected").inc()
        log_refusal(request, "rejected payload: %s", exc)
        return error(400, str(exc))
    except Exception:  # noqa: BLE001 - a 5xx would make the sender retry this payload forever
        WEBHOOK_EVENTS.labels(source, "rejected").inc()
        if log_refusal(request, "the parser failed on a payload (traceback below)"):
            logger.exception("%s webhook: the parser failed on a payload", source)
        return error(400, "the payload could not be read")
    # Alertmanager's always-firing Watchdog is a heartbeat's ping: never an alert, never a page.
    names = _services().settings.watchdog_names if source == Source.ALERTMANAGER else frozenset()
    watchdogs = [i.name for i in incoming if i.name in names and i.status == Status.FIRING]
    incoming = [i for i in incoming if i.name not in names]
    if not incoming and not watchdogs:
        return jsonify(status="ok", received=0, new=0, alerts=[], texts=0)
    return _store(source, incoming, watchdogs)


def receive(source: str, authorized: Callable[[], bool], parse: Callable[[object], list[Incoming]]):
    """A webhook of `source`'s shape at another door (an integration's): the same checks and store."""
    return _handle(source, True, authorized, parse)


@bp.post("/alertmanager")
@bp.post("/prometheus")
def alertmanager():
    """Alertmanager's webhook_configs (payload version 4)."""
    settings = _services().settings
    configured = bool(
        settings.alertmanager_token or (settings.alertmanager_user and settings.alertmanager_password)
    )
    return _handle(
        Source.ALERTMANAGER, configured, lambda: _alertmanager_auth_ok(settings), PARSERS[Source.ALERTMANAGER]
    )


@bp.post("/datadog")
def datadog():
    """Datadog's Webhooks integration: the custom payload of docs/alert-sources.md, or Datadog's default."""
    settings = _services().settings

    def parse(payload: object) -> list[Incoming]:
        events = PARSERS[Source.DATADOG](payload)
        if not events:
            logger.info("datadog webhook: ignored a notification that is not an alert state")
        return events

    token = settings.datadog_token
    return _handle(
        Source.DATADOG, bool(token), lambda: bool(_bearer()) and same_secret(_bearer(), token), parse
    )


@bp.errorhandler(RequestEntityTooLarge)
def too_large(_exc: RequestEntityTooLarge):
    return error(413, "body larger than 1 MiB")


@bp.app_errorhandler(NotFound)
@bp.app_errorhandler(MethodNotAllowed)
def routing_error(exc: HTTPException):
    """JSON errors for webhook paths (senders log the body); other paths keep Flask's answer."""
    if not request.path.startswith("/webhook/"):
        return exc
    headers = {"Allow": "POST"} if isinstance(exc, MethodNotAllowed) else {}
    return error(exc.code or 404, exc.name.lower(), **headers)
