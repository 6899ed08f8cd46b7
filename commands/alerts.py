"""alerts, ack, snooze, silence, unsilence, resolve, yes/no: handling alerts from the phone.

Every alert source (rules, Alertmanager, Datadog) shares the records in incidents.records, so these
commands work the same for all of them. An id is optional where it makes sense: a bare `ack`
means the alert of the last page that reached you (the carrier accepted it for your phone); when
that is not certain, Operator names the candidates and asks. Actions on many alerts ask "Reply
YES" first.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import Connection

import alerting
from command_processor import CommandError, Context, command
from config import Settings
from conversation import arguments, pending, resolver
from conversation.arguments import Target
from core import db
from core.timeutil import clock, humanize
from incidents import maintenance, paging, records
from incidents.maintenance import Window
from incidents.records import Alert, Source, Status
from incidents.silences import Alertmanager, AlertmanagerError
from oncall.people import configured_name, display_name
from outbox import calls, queue
from outbox.backends import status_callback_url
from outbox.queue import Kind
from security import allows

logger = logging.getLogger(__name__)

MAX_SNOOZE = 7 * 86400.0
MAX_SILENCE = 30 * 86400.0


def parse_target(args: list[str], wants_duration: bool = False) -> Target:
    """Ids, all and a duration from the words (conversation.arguments); a number that cannot be used is refused."""
    target = arguments.parse_target(args, wants_duration)
    if target.problem:
        raise CommandError(target.problem)
    return target


def _canonical(ctx: Context, wants_duration: bool = False) -> str:
    """'12 13', 'all', '12 30m': the ids (or all), then the duration in its largest whole unit."""
    target = arguments.parse_target(ctx.args, wants_duration)
    every = target.all or ctx.text.strip().lower().startswith("ackall")
    parts = ["all"] if every and not target.ids else [str(i) for i in dict.fromkeys(target.ids)]
    if target.seconds > 0:
        parts.append(resolver.duration_text(target.seconds))
    return " ".join(parts)


def _timed_canonical(ctx: Context) -> str:
    return _canonical(ctx, wants_duration=True)


def _ago(seconds: float) -> str:
    return humanize(db.now() - seconds)


def closed_text(alert: Alert) -> str:
    """'#12 resolved 5m ago (HighCPU)': closed alerts are never 'unknown'."""
    return f"#{alert.id} resolved {_ago(alert.resolved_at or alert.last_seen)} ago ({alert.name})"


def _until(settings: Settings, at: float, now: float) -> str:
    """'until Tue 03:15 CET': when something asked for by SMS ends, in TIMEZONE."""
    return f"until {clock(at, settings.zone, now)}"


def _taken(
    alert: Alert, now: float, settings: Settings, long: bool = False, windows: list[Window] | None = None
) -> list[str]:
    """Who took the alert and how (acked, snoozed, silenced, in maintenance): what keeps it quiet."""
    flags = []
    window = maintenance.covering(windows or [], alert)
    if window is not None:
        left = humanize(window.ends_at - now)
        flags.append(
            f"in maintenance #{window.id} ({window.scope}), not paged for {left}" if long else "maintenance"
        )
    if alert.acked_at:
        who = display_name(settings, alert.acked_by, "someone")
        # The short form keeps a list line short: a name, else the number's last four digits.
        short = configured_name(settings, alert.acked_by)[:12] or who[-4:]
        flags.append(f"acked by {who} {_ago(alert.acked_at)} ago" if long else f"ack {short}")
    if alert.snoozed_until is not None and alert.snoozed_until > now:
        flags.append(f"snoozed {humanize(alert.snoozed_until - now)}" + (" more" if long else ""))
    if alert.silenced(now):
        flags.append("silenced in Alertmanager" if long else "silenced")
    return flags


def _line(alert: Alert, now: float, windows: list[Window], settings: Settings) -> str:
    places = alert.places.split(",") if alert.places else []
    where = (" " + ",".join(places[:2]) + (f" +{alert.size - 2}" if alert.size > 2 else "")) if places else ""
    flags = _taken(alert, now, settings, windows=windows)
    state = "" if alert.transition in ("FIRING", "") else f" {alert.transition}"
    extra = f" ({', '.join(flags)})" if flags else ""
    return f"#{alert.id}{state} {alert.name}{where} {humanize(now - alert.started_at)}{extra}"


# How a call went, in the fewest words (the dashboard has the whole story).
CALL_WORDS = {
    calls.Outcome.ACKED: "acked",
    calls.Outcome.RESOLVED: "resolved",
    calls.Outcome.ESCALATE: "pressed 1",
    calls.Outcome.ANSWERED: "answered, no key",
    calls.Outcome.NOT_REACHED: "not reached",
}
ESCALATIONS_SHOWN = 3


def _escalations(conn: Connection, alert: Alert, settings: Settings) -> str:
    """'escalated to +1555***0101 by call 3m ago, not reached; ...': the newest escalation steps' texts and calls."""
    placed = {c.id: c for c in calls.about(conn, alert.id)}
    sent = [t for t in queue.about(conn, alert.id) if t.kind in (Kind.ESCALATION, Kind.CALL)]
    said = []
    for t in sent[-ESCALATIONS_SHOWN:]:
        call = placed.get(t.id) if t.kind == Kind.CALL else None
        how = "by call" if t.kind == Kind.CALL else "by text"
        line = f"escalated to {display_name(settings, t.to_number)} {how} {_ago(t.created_at)} ago"
        if call is not None:
            line += ", " + CALL_WORDS.get(call.outcome, call.call_status or "queued")
        said.append(line)
    earlier = len(sent) - len(said)
    return "; ".join(said) + (f" (+{earlier} earlier)" if earlier > 0 else "")


def _detail(alert: Alert, windows: list[Window], conn: Connection, settings: Settings) -> str:
    if alert.status != Status.FIRING:
        lasted = humanize((alert.resolved_at or alert.last_seen) - alert.started_at)
        return f"{closed_text(alert)}, after {lasted}."
    now = db.now()
    where = f" on {alert.places.replace(',', ', ')}" if alert.places else ""
    parts = [
        f"#{alert.id} {alert.transition or 'FIRING'} {alert.name} for {humanize(now - alert.started_at)}{where}"
    ]
    if alert.summary and alert.summary != alert.name:
        parts.append(alert.summary)
    parts.extend(_taken(alert, now, settings, long=True, windows=windows))
    escalated = _escalations(conn, alert, settings)
    if escalated:
        parts.append(escalated)
    parts.append(f"from {alert.source}")
    return ". ".join(parts) + "."


def _shown(render: Callable[[Alert], str], alert: Alert) -> str:
    """One alert's text; a record that cannot be shown costs its own line, not everyone's list."""
    try:
        return render(alert)
    except Exception:  # noqa: BLE001 - the other alerts must still reach the phone
        logger.exception("alerts: could not show #%s", alert.id)
        return f"#{alert.id} {alert.name} (cannot be shown; see the log)"


def _fetch(conn: Connection, ctx: Context, target: Target, confirm: dict | None = None) -> list[Alert] | str:
    """The alerts named by ids, or the one whose page last reached this phone; else a question.

    `confirm` (the action a YES would take, without its ids) lets the question be answered YES.
    """
    if target.ids:
        return _by_ids(conn, target.ids)
    received, waiting = records.received_by(conn, ctx.phone, bool(status_callback_url(ctx.services.settings)))
    candidates = [*received, *waiting]
    if not candidates:
        raise CommandError("No alert was texted to you yet. Text ALERTS for open ones.")
    first, verb, tail = candidates[0], ctx.command, _tail(ctx)
    if not ctx.leading:
        # A command word mid-sentence ("cpu close to limit") must not act on an implied alert.
        raise CommandError(f"Which alert? Text '{verb} {first.id}{tail}' for #{first.id} {first.name}.")
    if len(received) == 1 and not waiting:
        return received
    if len(candidates) == 1:
        question = f"{first.line()} has not reached you yet."
        if confirm is None:
            return f"{question} Text '{verb} {first.id}{tail}' if you mean it."
        pending.ask(conn, ctx.phone, {**confirm, "ids": [first.id]})
        return f"{question} Reply YES to {verb} it, or text '{verb} {first.id}{tail}'."
    shown = [a.line() + ("" if a in received else " (not here yet)") for a in candidates[:3]]
    more = f" +{len(candidates) - 3}" if len(candidates) > 3 else ""
    question = f"Which alert? {', '.join(shown)}{more}. Text '{verb} {first.id}{tail}'"
    if confirm is None:
        return question + "."
    pending.ask(conn, ctx.phone, {**confirm, "ids": [a.id for a in candidates]})
    return f"{question}, or YES to {verb} all {len(candidates)}."


def _tail(ctx: Context) -> str:
    """The duration a bare snooze or silence was given, for the command it suggests."""
    target = arguments.parse_target(ctx.args, wants_duration=ctx.command in ("snooze", "silence"))
    return f" {humanize(target.seconds)}" if target.seconds else ""


def _by_ids(conn: Connection, ids: list[int]) -> list[Alert]:
    found = []
    for alert_id in dict.fromkeys(ids):
        alert = records.get(conn, alert_id)
        if alert is None:
            raise CommandError(f"No alert #{alert_id}. Text ALERTS for open ones.")
        found.append(alert)
    return found


def _one(conn: Connection, ctx: Context, target: Target, verb: str) -> Alert:
    if target.all:
        raise CommandError(f"{verb} works on one alert at a time, e.g. '{verb} 12'.")
    alerts = _fetch(conn, ctx, target)
    if isinstance(alerts, str):
        raise CommandError(alerts)
    if len(alerts) > 1:
        raise CommandError(f"One alert at a time for {verb}, e.g. '{verb} {alerts[0].id} 2h'.")
    return alerts[0]


# Words that ask about alerts anywhere in a sentence ("anything on fire?", "what paged me?").
ALERT_WORDS = (
    "fire", "burning", "paged", "paging", "pages", "pager", "open", "unacked", "unacknowledged",
    "outstanding", "pending", "triggered", "fired", "alarm", "details", "detail", "info", "woke", "wake",
    "anyone", "anybody", "someone",
)  # fmt: skip


@command(
    "alerts",
    aliases=("alert", "incidents", "incident", "firing", "alarms"),
    keywords=ALERT_WORDS,
    describes_ids=True,
)
def alerts_(ctx: Context) -> str:
    """alerts [id|recent]: open alerts, one alert's state, or the last ones including resolved."""
    target, settings = parse_target(ctx.args), ctx.services.settings
    with ctx.services.engine.connect() as conn:
        now = db.now()
        windows = maintenance.active(conn, now)
        if target.ids:
            return " | ".join(
                _shown(lambda a: _detail(a, windows, conn, settings), a) for a in _by_ids(conn, target.ids)
            )
        if "recent" in ctx.args or "history" in ctx.args or "last" in ctx.args:
            recent = records.recent(conn, 10)
            if not recent:
                return "No alerts yet."
            return "\n".join(
                _shown(
                    lambda a: (
                        _line(a, now, windows, settings) if a.status == Status.FIRING else closed_text(a)
                    ),
                    a,
                )
                for a in recent
            )
        open_alerts = records.firing(conn)
        if not open_alerts:
            last = records.latest(conn)
            return "No open alerts." + (f" Last: {_shown(closed_text, last)}." if last else "")
        lines = [_shown(lambda a: _line(a, now, windows, settings), a) for a in reversed(open_alerts)]
        return f"{len(open_alerts)} open:\n" + "\n".join(lines)


def ask(conn: Connection, ctx: Context, action: dict, question: str) -> str:
    """Store `action` (with "op", and "role" it needs) until this phone's YES; returns the question."""
    pending.ask(conn, ctx.phone, action)
    return f"Reply YES to {question} (within 5 min)."


def _ack(conn: Connection, alert: Alert, phone: str, settings: Settings) -> str:
    if alert.status != Status.FIRING:
        return closed_text(alert) + "; nothing to ack"
    if alert.acked_at:
        who = "you" if alert.acked_by == phone else display_name(settings, alert.acked_by, "someone")
        return f"#{alert.id} already acked by {who} {_ago(alert.acked_at)} ago"
    _mark_acked(conn, alert.id, phone)
    return f"Acked #{alert.id} {alert.name} (firing {_ago(alert.started_at)})"


def _mark_acked(conn: Connection, alert_id: int, phone: str) -> None:
    """Acked: no more reminders or escalation for it (records.Alert.quiet)."""
    records.ack(conn, alert_id, phone, db.now())


def _mark_snoozed(conn: Connection, alert_id: int, seconds: float) -> None:
    """Snoozed: no reminders or escalation until then; a reminder when it ends if still firing."""
    records.snooze(conn, alert_id, db.now() + seconds)


def _unacked(conn: Connection) -> list[Alert]:
    return [a for a in records.firing(conn) if not a.acked_at]


@command(
    "ack",
    aliases=("acknowledge", "acked", "ackall", "ackd", "ack'd"),
    role="responder",
    canonical=_canonical,
    unlimited=True,
)
def ack(ctx: Context) -> str:
    """ack [id|all]: acknowledge the last alert that reached you, alert #id, or every open alert."""
    target = parse_target(ctx.args)
    with ctx.services.engine.begin() as conn:
        if target.all or ctx.text.strip().lower().startswith("ackall"):
            unacked = _unacked(conn)
            if not unacked:
                return "Nothing to ack: no open alert is unacknowledged."
            if len(unacked) == 1:
                return _ack(conn, unacked[0], ctx.phone, ctx.services.settings) + "."
            ids = [a.id for a in unacked]
            return ask(conn, ctx, {"op": "ack", "ids": ids}, f"ack {len(ids)} alerts ({_ids(ids)})")
        found = _fetch(conn, ctx, target, {"op": "ack"})
        if isinstance(found, str):
            return found
        return ". ".join(_ack(conn, a, ctx.phone, ctx.services.settings) for a in found) + "."


def _ids(ids: list[int]) -> str:
    shown = ",".join(f"#{i}" for i in ids[:6])
    return shown + (f" +{len(ids) - 6}" if len(ids) > 6 else "")


def _snooze(conn: Connection, alert: Alert, seconds: float, settings: Settings) -> str:
    if alert.status != Status.FIRING:
        return closed_text(alert) + "; nothing to snooze"
    now = db.now()
    _mark_snoozed(conn, alert.id, seconds)
    return f"Snoozed #{alert.id} {alert.name} for {humanize(seconds)}, {_until(settings, now + seconds, now)}"


def _duration(target: Target, verb: str, limit: float) -> float:
    if not target.seconds:
        raise CommandError(f"How long? e.g. '{verb} 12 30m' (s, m, h, d).")
    if target.seconds > limit:
        raise CommandError(f"At most {humanize(limit)} for {verb}.")
    return target.seconds


@command("snooze", aliases=("mute", "hush"), role="responder", canonical=_timed_canonical, unlimited=True)
def snooze(ctx: Context) -> str:
    """snooze [id|all] 30m: no reminders for that alert for a while (a RESOLVED still comes)."""
    target = parse_target(ctx.args, wants_duration=True)
    seconds = _duration(target, "snooze", MAX_SNOOZE)
    with ctx.services.engine.begin() as conn:
        if target.all:
            open_alerts = records.firing(conn)
            if not open_alerts:
                return "No open alerts to snooze."
            ids = [a.id for a in open_alerts]
            action = {"op": "snooze", "ids": ids, "seconds": seconds}
            return ask(conn, ctx, action, f"snooze {len(ids)} alerts for {humanize(seconds)}")
        found = _fetch(conn, ctx, target, {"op": "snooze", "seconds": seconds})
        if isinstance(found, str):
            return found
        return ". ".join(_snooze(conn, a, seconds, ctx.services.settings) for a in found) + "."


def _alertmanager(ctx: Context, alert: Alert) -> Alertmanager:
    if alert.source != Source.ALERTMANAGER:
        raise CommandError(
            f"#{alert.id} comes from {alert.source}, not Alertmanager. Try 'snooze {alert.id} 2h' instead."
        )
    url = ctx.services.settings.alertmanager_url
    if not url:
        raise CommandError("ALERTMANAGER_URL is not set, so Operator cannot silence. Try snooze instead.")
    return Alertmanager(url, ctx.services.settings.monitor_timeout)


@command(
    "silence", aliases=("shush", "suppress"), role="responder", canonical=_timed_canonical, unlimited=True
)
def silence(ctx: Context) -> str:
    """silence id 2h: a silence in Alertmanager matching that alert's labels."""
    target = parse_target(ctx.args, wants_duration=True)
    seconds = _duration(target, "silence", MAX_SILENCE)
    with ctx.services.engine.connect() as conn:
        alert = _one(conn, ctx, target, "silence")
    if alert.status != Status.FIRING:
        return closed_text(alert) + "; nothing to silence."
    client = _alertmanager(ctx, alert)
    now = db.now()
    comment = f"Operator #{alert.id} {alert.name}: silenced by SMS for {humanize(seconds)}"
    try:
        if alert.silence_id:
            client.expire_silence(alert.silence_id)  # replaced, not stacked
        who = display_name(ctx.services.settings, ctx.phone)
        silence_id = client.create_silence(alert.labels, now, now + seconds, who, comment)
    except AlertmanagerError as exc:
        raise CommandError(f"Could not silence #{alert.id}: {exc}. Nothing changed.") from None
    with ctx.services.engine.begin() as conn:
        records.silenced(conn, alert.id, silence_id, now + seconds)
    until = _until(ctx.services.settings, now + seconds, now)
    return (
        f"Silenced #{alert.id} {alert.name} in Alertmanager for {humanize(seconds)}, {until}. "
        f"'unsilence {alert.id}' ends it."
    )


@command("unsilence", aliases=("unmute", "unshush", "unsuppress"), role="responder", unlimited=True)
def unsilence(ctx: Context) -> str:
    """unsilence id: expire the silence Operator created for that alert."""
    target = parse_target(ctx.args)
    with ctx.services.engine.connect() as conn:
        alert = _one(conn, ctx, target, "unsilence")
    if not alert.silence_id:
        state = closed_text(alert) + ". It" if alert.status != Status.FIRING else f"#{alert.id}"
        return f"{state} has no silence from Operator."
    client = _alertmanager(ctx, alert)
    try:
        known = client.expire_silence(alert.silence_id)
    except AlertmanagerError as exc:
        raise CommandError(f"Could not unsilence #{alert.id}: {exc}.") from None
    with ctx.services.engine.begin() as conn:
        records.unsilenced(conn, alert.id)
    note = "" if known else " (Alertmanager had already dropped it)"
    return f"Silence on #{alert.id} {alert.name} expired{note}."


@command("resolve", aliases=("close", "resolved", "fixed", "solved"), role="responder", unlimited=True)
def resolve(ctx: Context) -> str:
    """resolve id: close an alert here; everyone paged for it gets a RESOLVED text."""
    target = parse_target(ctx.args)
    with ctx.services.engine.begin() as conn:
        alert = _one(conn, ctx, target, "resolve")
        if alert.status != Status.FIRING:
            return closed_text(alert) + "."
        closed = records.close(conn, alert.id, by=ctx.phone)
        settings = ctx.services.settings
        who = display_name(settings, ctx.phone)
        told = paging.send_recovery(conn, closed, settings, by=ctx.phone, who=who, delay=False)
        breached = alert.source == Source.RULE and alerting.is_firing(conn, alert.key)
    others = f" Told {told} other{'s' if told != 1 else ''}." if told else ""
    # A rule still over its threshold stays closed until it clears; the next breach pages anew.
    still = " Still breached: it pages again after it clears and breaches anew." if breached else ""
    assert closed.resolved_at is not None  # close() just resolved it: it was firing in this transaction
    lasted = humanize(closed.resolved_at - closed.started_at)
    return f"Resolved #{alert.id} {alert.name} after {lasted}.{others}{still}"


def _confirm_alerts(ctx: Context, conn: Connection, action: dict) -> str:
    results = []
    for alert_id in action["ids"]:
        alert = records.get(conn, alert_id)
        if alert is None or alert.status != Status.FIRING:
            continue
        if action["op"] == "ack" and not alert.acked_at:
            _mark_acked(conn, alert.id, ctx.phone)
            results.append(alert.id)
        elif action["op"] == "snooze":
            _mark_snoozed(conn, alert.id, action["seconds"])
            results.append(alert.id)
    if not results:
        return "Nothing left to do: those alerts were already handled or resolved."
    counted = f"{len(results)} alert{'s' if len(results) != 1 else ''}"
    if action["op"] == "ack":
        return f"Acked {counted}: {_ids(results)}."
    now, seconds = db.now(), action["seconds"]
    until = _until(ctx.services.settings, now + seconds, now)
    return f"Snoozed {counted} for {humanize(seconds)}, {until}: {_ids(results)}."


# What a YES does, by the "op" of the stored question; other command modules may add theirs.
CONFIRMATIONS: dict[str, Callable[[Context, Connection, dict], str]] = {
    "ack": _confirm_alerts,
    "snooze": _confirm_alerts,
}


@command(
    "yes",
    aliases=("y", "confirm", "yep", "yeah", "yup", "yea", "ya", "sure", "affirmative"),
    hidden=True,
    leading=True,
    unlimited=True,
)
def yes(ctx: Context) -> str:
    """yes: confirm the question Operator just asked (within 5 minutes)."""
    with ctx.services.engine.begin() as conn:
        action = pending.take(conn, ctx.phone)
        handler = CONFIRMATIONS.get((action or {}).get("op", ""))
        if action is None or handler is None:
            return "Nothing to confirm: a YES counts within 5 minutes of the question."
        role = action.get("role", "responder")
        if not allows(ctx.role, role):
            return f"'{action['op']}' needs the {role} role; you are {ctx.role}."
        return handler(ctx, conn, action)


@command(
    "no",
    aliases=("nope", "n", "nah", "nvm", "nevermind", "negative", "abort"),
    hidden=True,
    leading=True,
    unlimited=True,
)
def no(ctx: Context) -> str:
    """no: drop the question Operator just asked."""
    with ctx.services.engine.begin() as conn:
        dropped = pending.drop(conn, ctx.phone)
    return "OK, nothing done." if dropped else "Nothing to cancel."
