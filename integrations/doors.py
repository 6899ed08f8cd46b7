"""The doors of `integrations:`, each answering in its sender's own shapes.

`POST /integrations/<name>` takes Alertmanager's, Datadog's and Grafana's webhooks (the /webhook/*
path) and generic posts (JSON or a form, read by the entry's fields); PagerDuty's Events API v2
(`/v2/enqueue`, `/v2/change/enqueue`) and Opsgenie's Alert API (`/v2/alerts...`) are answered at the
root, as their senders call them, and under `/integrations/<name>/` too. Order of checks, as at
/webhook/*: the integration and its secret (401; PagerDuty: its 400) -> its limit (429) -> body size
(413) -> strict JSON and the vendor's rules (400/422) -> stored in one transaction before the answer
(202), or 503 so the sender retries.
"""

from __future__ import annotations

import base64
import binascii
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any, TypeVar
from urllib.parse import parse_qsl

from flask import Blueprint, Response, current_app, jsonify, request
from sqlalchemy import Connection
from sqlalchemy.exc import DataError, IntegrityError, SQLAlchemyError
from werkzeug.exceptions import RequestEntityTooLarge

from core import db
from heartbeats import pings
from incidents import intake, records, webhooks
from incidents.records import Alert
from incidents.sources import TEAM_LABEL, Incoming, PayloadError, Source, decode, generic
from incidents.sources import opsgenie as og
from incidents.sources import pagerduty as pd
from incidents.sources.registry import PARSERS
from integrations.entries import Integration, Kind
from rate_limiter import RateLimiter
from security import same_secret
from services import Services

logger = logging.getLogger(__name__)
bp = Blueprint("integrations", __name__)
ENTRIES = "integrations.entries"
LIMITERS = "integrations.limiters"
T = TypeVar("T")
WEBHOOK_SOURCES = {
    Kind.ALERTMANAGER: Source.ALERTMANAGER,
    Kind.DATADOG: Source.DATADOG,
    Kind.GRAFANA: Source.GRAFANA,
}


class StoreFailed(Exception):
    """The store refused or failed: `status` and `message` say how to answer."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def _services() -> Services:
    services: Services = current_app.extensions["operator"]
    return services


def _entries() -> Mapping[str, Integration]:
    entries: Mapping[str, Integration] = current_app.extensions[ENTRIES]
    return entries


def _credential() -> str:
    """The secret as a Bearer token, a Basic password, a GenieKey, or `?token=`; "" for none."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() in ("bearer", "geniekey"):
        return value.strip()
    if scheme.lower() == "basic":
        try:
            return base64.b64decode(value.strip(), validate=True).decode().partition(":")[2]
        except (binascii.Error, UnicodeDecodeError):
            return ""
    return request.args.get("token", "")


def _matching(secret: str, kind: Kind, name: str | None) -> Integration | None:
    """The integration of `kind` (named `name`, when given) whose secret is `secret`.

    Every candidate is compared, in constant time, so timing tells nothing about which one was close.
    """
    found = None
    for entry in _entries().values():
        if entry.kind == kind and (name is None or entry.name == name):
            if same_secret(secret, entry.secret) and secret:
                found = entry
    return found


def _retry_after(entry: Integration) -> int:
    """0 when `entry` is within its `limit`, else the seconds to wait (shared by every worker)."""
    limiter: RateLimiter | None = current_app.extensions[LIMITERS].get(entry.name)
    if limiter is None:
        return 0
    decision = limiter.hit(entry.name)
    if decision.allowed:
        return 0
    webhooks.WEBHOOK_EVENTS.labels(entry.kind, "limited").inc()
    logger.warning("integration %s: over its limit (%s)", entry.name, entry.limit)
    return max(1, round(decision.retry_after))


def _body(limit: int) -> bytes:
    data = request.get_data(cache=False)  # RequestEntityTooLarge past MAX_CONTENT_LENGTH (1 MiB)
    if len(data) > limit:
        raise RequestEntityTooLarge()
    return data


def _pinned(entry: Integration, incoming: list[Incoming]) -> list[Incoming]:
    """The events with the integration's team on them (a sender's own TEAM_LABEL never counts)."""
    pinned = []
    for item in incoming:
        labels = {k: v for k, v in item.labels.items() if k != TEAM_LABEL}
        if entry.team:
            labels[TEAM_LABEL] = entry.team
        pinned.append(replace(item, labels=labels))
    return pinned


def _transaction(entry: Integration, work: Callable[[Connection], T], ahead: Iterable[Incoming] = ()) -> T:
    """`work` in one transaction, tried twice on a conflict; StoreFailed when it cannot be stored.

    `ahead`: the events `work` will ingest, sorted to their teams before the transaction opens.
    """
    engine = _services().engine
    for attempt in (1, 2):
        try:
            intake.sort_ahead(engine, _pinned(entry, list(ahead)), _services().settings)
            with engine.begin() as conn:
                return work(conn)
        except IntegrityError:
            # Another worker stored the same event between our check and insert; a second pass sees it.
            if attempt == 2:
                logger.exception("integration %s: could not store after a retry", entry.name)
        except DataError:
            logger.warning("integration %s: a value the store cannot hold", entry.name, exc_info=True)
            webhooks.WEBHOOK_EVENTS.labels(entry.kind, "rejected").inc()
            raise StoreFailed(400, "a value in the payload cannot be stored") from None
        except SQLAlchemyError:
            logger.exception("integration %s: store unavailable", entry.name)
            break
    webhooks.WEBHOOK_EVENTS.labels(entry.kind, "store_error").inc()
    raise StoreFailed(503, "store unavailable; retry later")


def _heard(entry: Integration) -> None:
    """An accepted event is the ping of the integration's `expect_every` (closing its silence, if any)."""
    settings = _services().settings
    heartbeat = next((h for h in settings.heartbeats if h.integration == entry.name), None)
    if heartbeat is None:
        return
    try:
        with _services().engine.begin() as conn:
            pings.ping(conn, heartbeat, settings, db.now())
    except SQLAlchemyError:
        # The event itself is stored: a lost ping costs at most an early INTEGRATION SILENT.
        logger.warning(
            "integration %s: could not record its event for expect_every", entry.name, exc_info=True
        )


def _ingest(conn: Connection, entry: Integration, incoming: list[Incoming]) -> intake.IngestResult:
    result = intake.ingest(conn, _pinned(entry, incoming), _services().settings)
    webhooks.WEBHOOK_EVENTS.labels(entry.kind, "new").inc(result.new)
    return result


# /integrations/<name>: Alertmanager's, Datadog's and Grafana's webhooks, through the /webhook/* path.


@bp.post("/integrations/<name>")
def integration(name: str):
    entry = _entries().get(name)
    # Every kind's door is /integrations/<name>: PagerDuty's takes an alert event, Opsgenie's creates.
    if entry is not None and entry.kind == Kind.PAGERDUTY:
        return _pagerduty(name, change=False)
    if entry is not None and entry.kind == Kind.OPSGENIE:
        return opsgenie_create(name)
    if entry is None:
        return webhooks.error(404, f"no integration is named {name[:40]!r}")
    if not same_secret(_credential(), entry.secret):
        webhooks.WEBHOOK_EVENTS.labels(entry.kind, "unauthorized").inc()
        logger.warning("integration %s: missing or wrong credentials from %s", name, request.remote_addr)
        return webhooks.error(
            401, "missing or wrong credentials", **{"WWW-Authenticate": 'Bearer realm="operator"'}
        )
    wait = _retry_after(entry)
    if wait:
        return webhooks.error(
            429, f"over this integration's limit ({entry.limit})", **{"Retry-After": str(wait)}
        )
    if entry.kind == Kind.GENERIC:
        return _generic(entry)

    # Alertmanager's, Datadog's and Grafana's webhooks: the /webhook/* path, from the same registry.
    source = WEBHOOK_SOURCES[entry.kind]
    answer = webhooks.receive(source, lambda: True, lambda payload: _pinned(entry, PARSERS[source](payload)))
    if (answer[1] if isinstance(answer, tuple) else 200) == 200:
        _heard(entry)
    return answer


# A generic webhook: GoAlert's fields by default, or the entry's own map


def _generic(entry: Integration):
    """One post, JSON or a form, as one event; answered like the /webhook/* doors."""
    try:
        data = _body(1024 * 1024)
        form = request.mimetype == "application/x-www-form-urlencoded"
        payload = _form(data) if form else decode(data)
        events = generic.parse_generic(payload, entry.name, uuid.uuid4().hex, entry.spec)
        result = _transaction(entry, lambda conn: _ingest(conn, entry, events), ahead=events)
    except RequestEntityTooLarge:
        webhooks.WEBHOOK_EVENTS.labels(entry.kind, "rejected").inc()
        return webhooks.error(413, "body larger than 1 MiB")
    except PayloadError as exc:
        webhooks.WEBHOOK_EVENTS.labels(entry.kind, "rejected").inc()
        logger.warning("integration %s: refused body: %s", entry.name, exc)
        return webhooks.error(400, str(exc))
    except StoreFailed as exc:
        return webhooks.error(exc.status, exc.message)
    _heard(entry)
    logger.info(
        "integration %s: %s, %d new, %d text(s)", entry.name, events[0].status, result.new, result.texts
    )
    return webhooks.accepted(result)


def _form(data: bytes) -> dict[str, str]:
    """A form body's fields (the first of a repeated name), strictly: PayloadError for anything else."""
    try:
        pairs = parse_qsl(data.decode("utf-8"), keep_blank_values=True, max_num_fields=200)
    except (UnicodeDecodeError, ValueError):
        raise PayloadError("the form is not UTF-8 or has more than 200 fields") from None
    found: dict[str, str] = {}
    for name, value in pairs:
        found.setdefault(name, value)
    return found


# PagerDuty Events API v2


def _pd_invalid(errors: list[str], status: int = 400) -> tuple[Response, int]:
    return jsonify(status="invalid event", message="Event object is invalid", errors=errors), status


@bp.post("/v2/enqueue", defaults={"name": None})
@bp.post("/integrations/<name>/v2/enqueue")
def pagerduty_enqueue(name: str | None):
    """An alert event: trigger, acknowledge or resolve."""
    return _pagerduty(name, change=False)


@bp.post("/v2/change/enqueue", defaults={"name": None})
@bp.post("/integrations/<name>/v2/change/enqueue")
def pagerduty_change(name: str | None):
    """A change event: kept as an event of kind change, never paged."""
    return _pagerduty(name, change=True)


def _pagerduty(name: str | None, change: bool):
    try:
        payload = decode(_body(pd.MAX_BODY))
    except RequestEntityTooLarge:
        webhooks.WEBHOOK_EVENTS.labels(Kind.PAGERDUTY, "rejected").inc()
        return _pd_invalid([f"the event is larger than {pd.MAX_BODY // 1024} KB"], 413)
    except PayloadError as exc:
        webhooks.WEBHOOK_EVENTS.labels(Kind.PAGERDUTY, "rejected").inc()
        return _pd_invalid([str(exc)])
    key = pd.routing_key(payload)
    entry = _matching(key, Kind.PAGERDUTY, name)
    if entry is None:
        # PagerDuty's Events API has no 401: a wrong routing key is an invalid event.
        webhooks.WEBHOOK_EVENTS.labels(Kind.PAGERDUTY, "unauthorized").inc()
        logger.warning("pagerduty event: unknown routing key from %s", request.remote_addr)
        if len(key) != pd.ROUTING_KEY_LENGTH:
            return _pd_invalid(
                [f"Length of 'routing_key' is incorrect (should be {pd.ROUTING_KEY_LENGTH} characters)"]
            )
        return _pd_invalid(["Invalid routing key"])
    wait = _retry_after(entry)
    if wait:
        body = jsonify(status="throttle event", message="Requests for this service are arriving too quickly")
        return body, 429, {"Retry-After": str(wait)}
    nonce = uuid.uuid4().hex
    try:
        if change:
            found = pd.parse_change(payload)
            event_key = records_key(f"change:{entry.name}:{nonce[:12]}:{found.summary}")
            _transaction(entry, lambda conn: records.change(conn, event_key, db.now()))
            _heard(entry)
            logger.info("integration %s: change event recorded", entry.name)
            return jsonify(status="success", message="Change event processed"), 202
        event = pd.parse_event(payload, entry.name, uuid.uuid4().hex, nonce)
    except pd.EventInvalid as exc:
        webhooks.WEBHOOK_EVENTS.labels(Kind.PAGERDUTY, "rejected").inc()
        logger.warning("integration %s: invalid event: %s", entry.name, exc)
        return _pd_invalid(exc.errors)
    except StoreFailed as exc:
        return _pd_invalid([exc.message], exc.status) if exc.status < 500 else _pd_error(exc)

    def apply(conn: Connection) -> str:
        if event.incoming is not None:
            result = _ingest(conn, entry, [event.incoming])
            return f"{result.new} new, {result.texts} text(s)"
        alert = records.find_firing(conn, Source.PAGERDUTY, f"{entry.name}:{event.dedup_key}")
        return (
            "acknowledged"
            if alert is not None and _acknowledge(conn, alert, entry)
            else "nothing to acknowledge"
        )

    try:
        outcome = _transaction(entry, apply, ahead=[event.incoming] if event.incoming else [])
    except StoreFailed as exc:
        return _pd_invalid([exc.message], exc.status) if exc.status < 500 else _pd_error(exc)
    _heard(entry)
    logger.info("integration %s: %s event, %s", entry.name, event.action, outcome)
    return jsonify(status="success", message="Event processed", dedup_key=event.dedup_key), 202


def _pd_error(exc: StoreFailed) -> tuple[Response, int]:
    return jsonify(status="error", message=exc.message), exc.status


def records_key(text: str) -> str:
    """An alert event's key: at most the 255 characters its column holds."""
    return text.replace("\x00", "")[:250]


def _acknowledge(conn: Connection, alert: Alert, entry: Integration) -> bool:
    if alert.acked_at is not None:
        return False
    records.ack(conn, alert.id, entry.name[:32], db.now())
    return True


# Opsgenie Alert API


def _og(status: int, message: str, started: float, **extra: Any) -> tuple[Response, int, dict[str, str]]:
    took = round(time.monotonic() - started, 3)
    headers = {"Retry-After": str(extra.pop("retry_after"))} if "retry_after" in extra else {}
    body = {"message": message, **extra, "took": took, "requestId": str(uuid.uuid4())}
    return jsonify(body), status, headers


def _og_accepted(started: float) -> tuple[Response, int]:
    took = round(time.monotonic() - started, 3)
    return jsonify(result="Request will be processed", took=took, requestId=str(uuid.uuid4())), 202


def _og_entry(name: str | None) -> Integration | None:
    return _matching(_credential(), Kind.OPSGENIE, name)


Refusal = tuple[Response, int, dict[str, str]]


def _og_request(
    name: str | None, started: float, read: Callable[[Integration, Any], T]
) -> tuple[Integration, T] | Refusal:
    """The integration and the parsed body, or Opsgenie's error answer."""
    entry = _og_entry(name)
    if entry is None:
        webhooks.WEBHOOK_EVENTS.labels(Kind.OPSGENIE, "unauthorized").inc()
        logger.warning("opsgenie request: missing or wrong GenieKey from %s", request.remote_addr)
        return _og(401, "Could not authenticate", started)
    wait = _retry_after(entry)
    if wait:
        return _og(
            429,
            "You are making too many requests! To avoid errors, we recommend you limit requests.",
            started,
            retry_after=wait,
        )
    try:
        data = _body(1024 * 1024)
        parsed = read(entry, decode(data) if data.strip() else None)
    except RequestEntityTooLarge:
        webhooks.WEBHOOK_EVENTS.labels(Kind.OPSGENIE, "rejected").inc()
        return _og(413, "Request body is too large.", started)
    except og.Unprocessable as exc:
        webhooks.WEBHOOK_EVENTS.labels(Kind.OPSGENIE, "rejected").inc()
        logger.warning("integration %s: refused body: %s", entry.name, exc)
        return _og(
            422, "Request body is not processable. Please check the errors.", started, errors=exc.errors
        )
    except PayloadError as exc:
        webhooks.WEBHOOK_EVENTS.labels(Kind.OPSGENIE, "rejected").inc()
        logger.warning("integration %s: refused body: %s", entry.name, exc)
        return _og(
            422,
            "Request body is not processable. Please check the errors.",
            started,
            errors={"body": str(exc)},
        )
    return entry, parsed


def _og_stored(
    entry: Integration, started: float, work: Callable[[Connection], str], ahead: Iterable[Incoming] = ()
):
    try:
        outcome = _transaction(entry, work, ahead)
    except StoreFailed as exc:
        return _og(422 if exc.status < 500 else exc.status, exc.message, started)
    _heard(entry)
    logger.info("integration %s: %s", entry.name, outcome)
    return _og_accepted(started)


@bp.post("/v2/alerts", defaults={"name": None})
@bp.post("/integrations/<name>/v2/alerts")
def opsgenie_create(name: str | None):
    """Create an alert; an open alert with the same alias takes it instead (Opsgenie's deduplication)."""
    started = time.monotonic()
    nonce = uuid.uuid4().hex
    found = _og_request(
        name, started, lambda entry, body: og.parse_alert(body, entry.name, str(uuid.uuid4()), nonce)
    )
    if len(found) == 3:
        return found
    entry, (incoming, note) = found

    def work(conn: Connection) -> str:
        result = _ingest(conn, entry, [incoming])
        alert = records.find_firing(conn, Source.OPSGENIE, incoming.record_key)
        if note and alert is not None:
            records.note(conn, alert.id, records_key(f"note:{nonce[:12]}:{note}"), db.now())
        return f"create, {result.new} new, {result.texts} text(s)"

    return _og_stored(entry, started, work, ahead=[incoming])


def _identified(conn: Connection, entry: Integration, identifier: str, kind: str) -> Alert | None:
    """The open alert of this integration that `identifier` names (alias, or Operator's id for id/tiny)."""
    if kind == "alias":
        return records.find_firing(conn, Source.OPSGENIE, f"{entry.name}:{identifier}")
    if not identifier.isdigit() or len(identifier) > 12:
        return None
    alert = records.get(conn, int(identifier))
    mine = alert is not None and alert.source == Source.OPSGENIE and alert.key.startswith(f"{entry.name}:")
    return alert if mine and alert is not None and alert.status == "firing" else None


def _og_on_alert(
    name: str | None,
    identifier: str,
    read: Callable[[Any], T],
    act: Callable[[Connection, Integration, Alert, T, str], str],
):
    started = time.monotonic()
    kind = request.args.get("identifierType", "id")
    if kind not in og.IDENTIFIER_TYPES:
        return _og(422, "Invalid identifierType: must be one of id, alias or tiny.", started)
    found = _og_request(name, started, lambda _entry, body: read(body))
    if len(found) == 3:
        return found
    entry, parsed = found
    nonce = uuid.uuid4().hex

    def work(conn: Connection) -> str:
        alert = _identified(conn, entry, identifier, kind)
        # Opsgenie answers 202 and works later; an alert it cannot find changes nothing.
        return "no such open alert" if alert is None else act(conn, entry, alert, parsed, nonce)

    return _og_stored(entry, started, work)


def _close(conn: Connection, entry: Integration, alert: Alert, action: og.Action, nonce: str) -> str:
    alias = alert.key.split(":", 1)[1]
    result = _ingest(conn, entry, [og.closed(entry.name, alias, nonce)])
    return f"close, {result.texts} text(s)"


def _ack(conn: Connection, entry: Integration, alert: Alert, action: og.Action, nonce: str) -> str:
    if action.note:
        records.note(conn, alert.id, records_key(f"note:{nonce[:12]}:{action.note}"), db.now())
    return "acknowledge" if _acknowledge(conn, alert, entry) else "already acknowledged"


def _note(conn: Connection, entry: Integration, alert: Alert, action: og.Action, nonce: str) -> str:
    records.note(conn, alert.id, records_key(f"note:{nonce[:12]}:{action.note}"), db.now())
    return "note added"


@bp.post("/v2/alerts/<identifier>/close", defaults={"name": None})
@bp.post("/integrations/<name>/v2/alerts/<identifier>/close")
def opsgenie_close(name: str | None, identifier: str):
    return _og_on_alert(name, identifier, og.parse_action, _close)


@bp.post("/v2/alerts/<identifier>/acknowledge", defaults={"name": None})
@bp.post("/integrations/<name>/v2/alerts/<identifier>/acknowledge")
def opsgenie_acknowledge(name: str | None, identifier: str):
    return _og_on_alert(name, identifier, og.parse_action, _ack)


@bp.post("/v2/alerts/<identifier>/notes", defaults={"name": None})
@bp.post("/integrations/<name>/v2/alerts/<identifier>/notes")
def opsgenie_note(name: str | None, identifier: str):
    return _og_on_alert(name, identifier, lambda body: og.parse_action(body, note_required=True), _note)


@bp.put("/v2/alerts/<identifier>/<any(message, description):field>", defaults={"name": None})
@bp.put("/integrations/<name>/v2/alerts/<identifier>/<any(message, description):field>")
def opsgenie_update(name: str | None, identifier: str, field: str):
    """Alertmanager's `update_alerts: true`: the alert's message (its name) or description (its summary)."""

    def update(conn: Connection, entry: Integration, alert: Alert, value: str, nonce: str) -> str:
        column = "name" if field == "message" else "summary"
        records.set_fields(conn, alert.id, **{column: value})
        return f"{field} updated"

    return _og_on_alert(name, identifier, lambda body: og.parse_update(body, field), update)
