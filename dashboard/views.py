"""The dashboard's pages. Each reads through the owning packages and renders a Jinja template
(autoescaped: bodies, labels and annotations are shown as text, never as markup)."""

from __future__ import annotations

import logging
import math
import uuid
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.wrappers import Response as BaseResponse

import alerting
from config import ConfigError
from core import db
from dashboard import auth, charts, log
from dashboard.auth import LoginForm, PhoneForm, PlainForm, login_required, services
from heartbeats import pings
from inbound import audit, pipeline
from incidents import records, rulefile
from oncall import escalation, people, routing, teams
from outbox import calls, queue
from outbox.queue import Kind
from security import log_refusal, mask, mask_numbers
from voice import routes as voice_routes
from worker import liveness

logger = logging.getLogger(__name__)
bp = Blueprint(
    "dashboard",
    __name__,
    url_prefix="/dashboard",
    template_folder="templates",
    static_folder="static",
)

# No script at all, styles only from our own file, nothing framed or posted elsewhere.
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
OPEN_ALERTS_SHOWN = 50


@bp.after_app_request
def _headers(response: BaseResponse) -> BaseResponse:
    # Every answer under /dashboard, its 404s and 405s included (those never reach the blueprint).
    if not request.path.startswith("/dashboard"):
        return response
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"
    if request.endpoint != "dashboard.static":
        response.headers["Cache-Control"] = "no-store"
    return response


@bp.errorhandler(SQLAlchemyError)
def _store_down(exc: SQLAlchemyError) -> tuple[str, int]:
    logger.error("dashboard: store unreachable (%s)", exc.__class__.__name__)
    return render_template(
        "dashboard/error.html", message="The store does not answer; try again shortly."
    ), 503


@bp.app_template_filter("when")
def _when(at: float | None) -> str:
    """Every time on every page: in TIMEZONE, naming the zone ('2026-12-08 03:05:09 CET')."""
    return log.when(at, services().settings.zone)


@bp.app_template_filter("ago")
def _ago(at: float | None) -> str:
    if at is None or not math.isfinite(at):
        return ""
    seconds = max(0, int(db.now() - at))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@bp.context_processor
def _context() -> dict[str, Any]:
    try:
        logged_in = auth.logged_in()
    except SQLAlchemyError:
        logged_in = False  # the page says the store is down; its header cannot ask it either
    return {"admin": auth.is_admin(), "logout_form": PlainForm(), "logged_in": logged_in}


def _number(phone: str | None) -> str:
    """A person in a table: 'Alice (+15555550101)' when a team names the number (masked for viewers)."""
    if not phone:
        return ""
    number = phone if auth.is_admin() else mask(phone)
    name = _text(people.configured_name(services().settings, phone))
    return f"{name} ({number})" if name else number


def _text(value: str | None) -> str:
    """Free text (from a sender, a monitor or the config) as this user may see it: every
    phone-shaped run in it masked unless admin."""
    if not value:
        return ""
    return value if auth.is_admin() else mask_numbers(value)


def _alert(alert: records.Alert) -> records.Alert:
    """The alert as this user may see it: what its sender wrote, masked unless admin (who acked
    or resolved it goes through _number where it is shown)."""
    if auth.is_admin():
        return alert
    return replace(
        alert,
        key=_text(alert.key),
        name=_text(alert.name),
        summary=_text(alert.summary),
        severity=_text(alert.severity),
        labels={_text(k): _text(v) for k, v in alert.labels.items()},
        url=_text(alert.url) or None,
        group_key=_text(alert.group_key) or None,
        places=_text(alert.places),
    )


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    form = LoginForm()
    if request.method == "GET":
        form.next.data = request.args.get("next", "")
        return render_template("dashboard/login.html", form=form, error="")
    if not form.validate_on_submit():
        error = (
            "The form expired; try again."
            if "csrf_token" in form.errors
            else "Enter a username and a password."
        )
        return render_template("dashboard/login.html", form=form, error=error), 400
    username = form.username.data or ""
    wait = auth.login_limits().refusal(username)
    if wait is not None:
        minutes = max(1, int(wait // 60) + 1)
        error = f"Too many login attempts; try again in {minutes} min."
        log_refusal(request, "too many failed logins")
        return render_template("dashboard/login.html", form=form, error=error), 429
    if not auth.check_login(username, form.password.data or ""):
        auth.login_limits().failed(username)
        log_refusal(request, "wrong username or password")
        return render_template("dashboard/login.html", form=form, error="Wrong username or password."), 401
    auth.open_session()
    return redirect(auth.safe_next(form.next.data))


@bp.post("/logout")
def logout() -> Any:
    if PlainForm().validate_on_submit():
        auth.close_session()
    return redirect(url_for("dashboard.login"))


@bp.post("/sessions/end")
@login_required
def end_sessions() -> Any:
    """An admin's "log everyone out": every session ends, this one too."""
    if not auth.is_admin():
        abort(403)
    if not PlainForm().validate_on_submit():
        abort(400)
    ended = auth.close_every_session()
    logger.warning("dashboard: an admin logged everyone out (%d session(s) ended)", ended)
    return redirect(url_for("dashboard.login"))


@bp.get("/")
@login_required
def overview() -> str:
    svc = services()
    settings, now = svc.settings, db.now()
    zone = settings.zone
    month = log.month_start(now)
    hours, days = log.hour_edges(now, 24), log.day_edges(now, 14, zone)
    with svc.engine.connect() as conn:
        firing, firing_total = records.firing_newest(conn, OPEN_ALERTS_SHOWN)
        paged = {a.id: queue.numbers_paged(conn, a.id) for a in firing}
        workers = liveness.liveness(conn, settings.worker_silent_after, now)
        depth = queue.depth(conn)
        oldest = queue.oldest_waiting(conn, now)
        pinged = pings.every(conn)
        inbound_texts, reply_segments = audit.reply_segments(conn, month)
        segments = reply_segments + queue.charged_segments(conn, month)
        outcomes = queue.outcomes(conn, month)
        texts = audit.received_between(conn, hours)
        pages = queue.pages_between(conn, days)
        on_call = [_on_call(conn, team, now) for team in teams.of(settings).values()]
    told = outcomes.get(queue.Delivery.DELIVERED, 0)
    tried = told + outcomes.get(queue.Delivery.UNDELIVERED, 0) + outcomes.get(queue.Delivery.FAILED, 0)
    outcome_names = sorted(outcomes)
    return render_template(
        "dashboard/overview.html",
        firing=[(_alert(a), [_number(p) for p in paged[a.id]], _number(a.acked_by)) for a in firing],
        firing_total=firing_total,
        workers=workers,
        worker_text=_text(workers.describe(settings.worker_silent_after)),
        depth=depth,
        oldest=oldest,
        heartbeats=[(replace(h, name=_text(h.name)), pinged.get(h.name)) for h in settings.heartbeats],
        on_call=on_call,
        now=now,
        inbound_texts=inbound_texts,
        segments=segments,
        cost=(segments + inbound_texts) * settings.sms_segment_price,
        price=settings.sms_segment_price,
        success=None if not tried else 100.0 * told / tried,
        texts_chart=charts.bars(
            f"Texts received per hour ({log.when(now, zone).rsplit(' ', 1)[-1]})",
            [log.when(h, zone)[11:13] for h in hours[:-1]],
            texts,
            every=3,
        ),
        pages_chart=charts.bars(
            "Pages per day", [log.when(d, zone)[5:10] for d in days[:-1]], pages, every=2
        ),
        outcomes_chart=charts.bars(
            "Delivery outcomes this month", outcome_names, [outcomes[n] for n in outcome_names]
        ),
    )


def _member(team: teams.Team, phone: str | None) -> str:
    return _number(phone)


def _on_call(conn: Connection, team: teams.Team, now: float) -> dict[str, Any]:
    """Who of `team` is on call now, until when, and who is next (as `oncall` answers by SMS)."""
    try:
        current = routing.on_call(conn, team, now)
    except Exception:  # noqa: BLE001 - one team's broken schedule must not take the overview down
        logger.exception("dashboard: team %s: who is on call cannot be worked out", team.name)
        return {"team": _text(team.name), "problem": "cannot be worked out (see the logs)"}
    return {
        "team": _text(team.name),
        "now": _member(team, current.phone),
        "until": current.until,
        "next": _member(team, current.next_phone),
        "override": current.override,
        "problem": "",
    }


def _log_rows(
    filters: log.Filters, cursor: tuple[float, str, int] | None, limit: int
) -> list[dict[str, Any]]:
    with services().engine.connect() as conn:
        return log.page(conn, filters, cursor, limit)


@bp.get("/messages")
@login_required
def messages() -> Any:
    filters, problems = log.parse(request.args, auth.is_admin())
    raw_cursor = request.args.get("before", "")
    cursor = log.parse_cursor(raw_cursor)
    if raw_cursor and cursor is None:
        problems.append("that page link is not valid; showing the newest messages")
    rows = [] if problems and not cursor else _log_rows(filters, cursor, log.PAGE + 1)
    more = len(rows) > log.PAGE
    rows = rows[: log.PAGE]
    admin = auth.is_admin()
    next_args: dict[str, Any] | None = None
    if more and rows:
        next_args = {**filters.query(), "before": log.cursor_of(rows[-1])}
    return render_template(
        "dashboard/messages.html",
        rows=[log.for_viewer(r, admin) for r in rows],
        filters=filters,
        problems=problems,
        next_url=url_for("dashboard.messages", **next_args) if next_args else None,
        csv_url=url_for("dashboard.messages_csv", **dict[str, Any](filters.query())),
    ), 400 if problems else 200


@bp.get("/messages.csv")
@login_required
def messages_csv() -> Any:
    filters, problems = log.parse(request.args, auth.is_admin())
    if problems:
        return Response("; ".join(problems) + "\n", status=400, mimetype="text/plain")
    lines = log.csv_lines(_log_rows, filters, auth.is_admin(), services().settings.zone)
    return Response(
        stream_with_context(lines),
        mimetype="text/csv",
        headers={"Content-Disposition": 'attachment; filename="operator-messages.csv"'},
    )


@bp.get("/alerts")
@login_required
def alerts() -> str:
    before = request.args.get("before", "")
    before_id = int(before) if before.isdigit() and len(before) <= 10 else None
    if before_id is not None and before_id > log.MAX_ID:
        before_id = None
    with services().engine.connect() as conn:
        found = records.older_than(conn, log.PAGE + 1, before_id)
    more = len(found) > log.PAGE
    found = found[: log.PAGE]
    return render_template(
        "dashboard/alerts.html",
        alerts=[(_alert(a), _number(a.acked_by), _number(a.resolved_by)) for a in found],
        next_url=url_for("dashboard.alerts", before=found[-1].id) if more else None,
    )


@bp.get("/alerts/<int:alert_id>")
@login_required
def alert(alert_id: int) -> str:
    with services().engine.connect() as conn:
        found = records.get(conn, alert_id) if alert_id <= log.MAX_ID else None
        if found is None:
            abort(404)
        events = records.events(conn, alert_id)
        texts = queue.about(conn, alert_id)
        placed = {c.id: c for c in calls.about(conn, alert_id)}
    shown = _alert(found)
    return render_template(
        "dashboard/alert.html",
        alert=shown,
        timeline=_timeline(shown, events, texts, placed),
        labels=shown.labels,
        # Only a web link is a link: a javascript: or data: URL from a webhook stays text nowhere.
        link=shown.url if (shown.url or "").lower().startswith(("https://", "http://")) else None,
    )


def _timeline(
    alert: records.Alert,
    events: list[tuple[str, float]],
    texts: list[Any],
    placed: dict[int, calls.Call] | None = None,
) -> list[tuple[float, str]]:
    """What happened to one alert, oldest first: (time, what)."""
    placed = placed or {}
    steps: list[tuple[float, str]] = [(alert.started_at, f"started (as {alert.source} reports it)")]
    # Besides the webhook's reports, the alert's events hold what escalation and calls recorded.
    reported = [
        (k, at) for k, at in events if not k.startswith((escalation.PREFIX, voice_routes.NOTE_PREFIX))
    ]
    settled: dict[int, float] = {}
    for key, at in events:
        if key.startswith(voice_routes.NOTE_PREFIX):
            call_id = key[len(voice_routes.NOTE_PREFIX) :].split(":")[0]
            settled.setdefault(int(call_id) if call_id.isdigit() else 0, at)
        elif (taken := escalation.step_of(key)) is not None:
            round_, index = taken
            steps.append((at, f"team escalation step {index}" + (f" (round {round_ + 1})" if round_ else "")))
    # Only new events are stored (a repeat is dropped at intake): after the first, each is news, and
    # the last one of an alert its source closed is the resolved notice that closed it.
    closed_by_source = alert.status == records.Status.RESOLVED and not alert.resolved_by
    for i, (key, at) in enumerate(reported):
        if i == len(reported) - 1 and i and closed_by_source:
            what = f"resolved by {alert.source}: its resolved notice"
        else:
            what = f"received from {alert.source}" if i == 0 else f"update received from {alert.source}"
        steps.append((at, f"{what} (event {_text(key)})"))
    if alert.opened_at:
        steps.append((alert.opened_at, f"opened as alert #{alert.id}"))
    for t in texts:
        who = _number(t.to_number)
        steps.append((t.created_at, f"{t.kind} queued for {who}"))
        call = placed.get(t.id) if t.kind == Kind.CALL else None
        if call is not None:
            if t.sent_at:
                steps.append((t.sent_at, f"call placed to {who}"))
            if call.outcome.final:
                at = settled.get(t.id) or t.delivery_updated_at or t.sent_at or t.created_at
                steps.append((at, f"call to {who}: {call.told}"))
            continue
        if t.sent_at:
            steps.append((t.sent_at, f"{t.kind} sent to {who}"))
        if t.delivery_updated_at and t.delivery_status:
            error = f" (error {_text(t.error_code)})" if t.error_code else ""
            steps.append((t.delivery_updated_at, f"{t.kind} to {who}: {_text(t.delivery_status)}{error}"))
        elif t.status in (queue.Delivery.FAILED, queue.Delivery.DROPPED, queue.Delivery.FOLDED):
            steps.append((t.sent_at or t.created_at, f"{t.kind} to {who}: {t.status}"))
    if alert.acked_at:
        steps.append((alert.acked_at, f"acked by {_number(alert.acked_by) or 'someone'}"))
    if alert.escalated_at:
        steps.append((alert.escalated_at, "escalated"))
    if alert.resolved_at:
        by = _number(alert.resolved_by) if alert.resolved_by else ""
        steps.append(
            (alert.resolved_at, f"resolved by {by}" if by else f"resolved (as {alert.source} reports it)")
        )
    return sorted(steps, key=lambda s: s[0])


@bp.get("/rules")
@login_required
def rules() -> str:
    try:
        defined = {r.name: r for r in rulefile.load_rules(services())}
        problem = ""
    except ConfigError as exc:
        defined, problem = {}, str(exc)
    with services().engine.connect() as conn:
        states = {r.rule: r for r in alerting.rule_rows(conn)}
        closed = alerting.closed_while_breached(conn)
    names = sorted(set(defined) | set(states))
    return render_template(
        "dashboard/rules.html",
        rules=[(_text(name), _rule(defined.get(name)), _state(states.get(name))) for name in names],
        closed={_text(name): alert_id for name, alert_id in closed.items()},
        problem=_text(problem),
        reading=alerting.reading,
    )


def _rule(rule: Any) -> Any:
    """A rule of the file as this user may see it (its name and query masked unless admin)."""
    if rule is None or auth.is_admin():
        return rule
    return replace(rule, name=_text(rule.name), query=_text(rule.query), message=_text(rule.message))


def _state(row: Any) -> Any:
    """A rule's stored state as this user may see it (its last error masked unless admin)."""
    if row is None or auth.is_admin():
        return row
    return SimpleNamespace(**{**row._mapping, "rule": _text(row.rule), "last_error": _text(row.last_error)})


@bp.route("/phone", methods=["GET", "POST"])
@login_required
def phone() -> Any:
    if not auth.is_admin():
        abort(403)
    settings = services().settings
    form = PhoneForm()
    numbers = list(settings.authorized)
    reply, error, status = None, "", 200
    if request.method == "POST":
        if not form.validate_on_submit():
            error = (
                "The form expired; try again."
                if "csrf_token" in form.errors
                else "Choose a number and type a text."
            )
            status = 400
        elif form.number.data not in settings.authorized:
            error, status = "That number is not in AUTHORIZED_NUMBERS.", 400
        else:
            # The same path as /sms, stored like any text; the id marks where it came from.
            sid = "DASH" + uuid.uuid4().hex
            reply = pipeline.handle(services(), form.number.data, sid, form.body.data or "")
    return render_template(
        "dashboard/phone.html", form=form, numbers=numbers, reply=reply, error=error
    ), status
