"""maintenance: hold pages during planned work, list the windows, end them early.

`maintenance 2h` holds every page, `maintenance 2h HighCPU` one alertname's, `maintenance 2h
instance=db-1` those whose labels (Alertmanager labels, Datadog tags, a rule's labels) say so.
Alerts are still stored and ALERTS lists them; a held page goes out when its window ends, if the
alert still fires and nobody took it (incidents.maintenance). Anyone may list the windows;
starting and ending them needs the responder role.

`maintenance off` ends the windows you started: another person's window (someone still working,
or a colleague's from the last shift) is ended by its number or with `off all`, except when it is
the only one, which is surely the one meant.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from sqlalchemy import Connection

from command_processor import CommandError, Context, command
from conversation.arguments import ALL_WORDS, MAX_ID_DIGITS, duration_at
from conversation.resolver import duration_text
from conversation.vocabulary import FILLER
from core import db
from core.timeutil import clock, humanize
from incidents import maintenance, paging, records
from incidents.maintenance import ALERTNAME, Window
from oncall.people import display_name
from security import allows

MAX_WINDOW = 7 * 86400.0
ROLE = "responder"
OFF_WORDS = frozenset(
    """off end ends ended ending stop stopped over done finish finished cancel cancelled canceled
    clear remove delete lift lifted exit leave disable complete completed out""".split()
)
# Words around a window that change nothing ("put db-1 in maintenance for 2h", "start maintenance").
NOISE = frozenset(
    """put start starting started begin set enable enter mode window windows we're were doing
    planned scheduled go into place new open add create run""".split()
)
_ID = re.compile(rf"#?(\d{{1,{MAX_ID_DIGITS}}})")
_LONG_ID = re.compile(r"#?\d+")
_NUMERIC = re.compile(r"[#+-]?\d.*")
# Prometheus label names; Datadog tag names may also carry dots, dashes and slashes.
_LABEL = re.compile(r"[a-z_][a-z0-9_./-]{0,99}")
_QUOTES = "\"'`"
# A bare word that looks like a host rather than an alertname (db-1, web.example.com).
_HOSTLIKE = re.compile(r"[-.\d]")
EXAMPLE = "e.g. 'maintenance 2h', 'maintenance 2h HighCPU' or 'maintenance 2h instance=db-1'"


@dataclass
class Request:
    """What a `maintenance` text asks for."""

    seconds: float = 0.0
    off: bool = False
    all: bool = False
    numbers: list[int] = field(default_factory=list)
    # (label, value): the alertname or label=value a window covers; None for everything.
    scope: tuple[str, str] | None = None


def _joined(words: list[str]) -> list[str]:
    """'instance = db-1' typed with spaces is one label=value."""
    out: list[str] = []
    for word in words:
        if out and (word.startswith("=") or out[-1].endswith("=")):
            out[-1] += word
        else:
            out.append(word)
    return out


def _as_typed(word: str, text: str) -> str:
    """The word with the case it was typed in (matching ignores case; replies show it as typed)."""
    found = re.search(re.escape(word), text, re.IGNORECASE)
    return text[found.start() : found.end()] if found else word


def _scope(word: str, text: str) -> tuple[str, str]:
    """'HighCPU' -> (alertname, HighCPU); 'instance=db-1' or Datadog's 'host:db-1' -> (instance, db-1)."""
    label, sep, value = word.partition("=")
    if not sep:
        label, sep, value = word.partition(":")
        if not sep or not _LABEL.fullmatch(label):
            label, value = ALERTNAME, word
    label, value = label.strip(), value.strip().strip(_QUOTES)
    if label.endswith("!") or value[:1] in ("~", "="):
        raise CommandError("Windows match exactly: label=value, e.g. instance=db-1 (no != or =~).")
    if not _LABEL.fullmatch(label) or not value:
        raise CommandError(f"'{word[:30]}' is no label=value; {EXAMPLE}.")
    if len(value) > 200:
        raise CommandError("That value is too long for a window (at most 200 characters).")
    return label, _as_typed(value, text)


def parse(args: list[str], text: str) -> Request:
    """The words after `maintenance` -> a Request; CommandError with the reason for what cannot be used."""
    request, words, i = Request(), _joined(args), 0
    while i < len(words):
        word = words[i]
        taken = duration_at(words, i)
        if taken is not None:
            seconds, i = taken
            if seconds <= 0:
                raise CommandError(f"'{word[:20]}' is no length of time; use e.g. 30m or 2h.")
            request.seconds += seconds
            continue
        if word in OFF_WORDS:
            request.off = True
        elif word in ALL_WORDS:
            request.all = True
        elif match := _ID.fullmatch(word):
            request.numbers.append(int(match.group(1)))
        elif _LONG_ID.fullmatch(word):
            raise CommandError(
                f"No maintenance #{word.lstrip('#')[:12]}... Text MAINTENANCE for the windows on."
            )
        elif word[:1] in "-+" and duration_at(words, i, signed=True):
            raise CommandError("A window cannot be negative; use e.g. 30m or 2h.")
        elif _NUMERIC.fullmatch(word) and "=" not in word:
            raise CommandError(
                f"'{word[:20]}' is not a length of time (e.g. 30m, 2h); for an alert of that name "
                f"use alertname={word[:20]}."
            )
        elif word not in FILLER and word not in NOISE:
            if request.scope is not None:
                raise CommandError(f"One alertname or label=value per window; {EXAMPLE}.")
            request.scope = _scope(word, text)
        i += 1
    return request


def _scope_text(scope: tuple[str, str]) -> str:
    return scope[1] if scope[0] == ALERTNAME else "=".join(scope)


def _left(window: Window, now: float) -> str:
    return f"{humanize(window.ends_at - now)} left"


def _by(ctx: Context, window: Window) -> str:
    return "you" if window.created_by == ctx.phone else display_name(ctx.services.settings, window.created_by)


def _short(windows: list[Window], now: float) -> str:
    return "; ".join(f"#{w.id} {w.scope} ({_left(w, now)})" for w in windows)


def listing(conn: Connection, ctx: Context, now: float) -> str:
    running = maintenance.active(conn, now)
    if not running:
        return f"No maintenance windows. Start one: {EXAMPLE}."
    held = maintenance.held_counts(conn)
    lines = []
    for window in running:
        count = held.get(window.id, 0)
        holding = f", {count} held" if count else ""
        lines.append(f"#{window.id} {window.scope} by {_by(ctx, window)}, {_left(window, now)}{holding}")
    noun = "window" if len(running) == 1 else "windows"
    return (
        f"{len(running)} maintenance {noun}:\n" + "\n".join(lines) + "\n'maintenance off [n|all]' ends them."
    )


def _need_role(ctx: Context) -> None:
    if not allows(ctx.role, ROLE):
        raise CommandError(f"Starting or ending maintenance needs the {ROLE} role; you are {ctx.role}.")


def _start(conn: Connection, ctx: Context, request: Request, now: float) -> str:
    if request.numbers and (request.seconds or len(request.numbers) > 1):
        raise CommandError(f"Windows take a length and one scope; {EXAMPLE}.")
    seconds = request.seconds or request.numbers[0] * 60.0  # a bare number is minutes, as for snooze
    if seconds > MAX_WINDOW:
        raise CommandError(f"At most {humanize(MAX_WINDOW)} for maintenance.")
    label, value = request.scope or (None, None)
    window, before = maintenance.start(conn, label, value, ctx.phone, now + seconds, now)
    until = f"until {clock(now + seconds, ctx.services.settings.zone, now)}"
    if before is not None:
        was = humanize(before - now)
        return f"Maintenance #{window.id} ({window.scope}) now ends in {humanize(seconds)}, {until} (was {was} left)."
    what = (
        "no alert pages (ALERTS lists them)"
        if label is None
        else f"{window.scope} alerts are stored, not paged"
    )
    reply = f"Maintenance #{window.id} for {humanize(seconds)}, {until}: {what}. 'maintenance off' ends it."
    if label == ALERTNAME and value and _HOSTLIKE.search(value) and not records.named(conn, value):
        reply += f" No alert is named {value}; for a host: instance={value}."
    return reply


def _off(conn: Connection, ctx: Context, request: Request, now: float) -> str:
    running = maintenance.active(conn, now)
    if not running:
        return "No maintenance window is on."
    if request.all:
        chosen = running
    elif request.numbers:
        chosen = [w for w in running if w.id in request.numbers]
        if not chosen:
            raise CommandError(f"No maintenance #{request.numbers[0]} is on. On: {_short(running, now)}.")
    elif request.scope is not None:
        chosen = [w for w in running if w.same_scope(*request.scope)]
        if not chosen:
            scope = _scope_text(request.scope)
            raise CommandError(f"No maintenance for {scope} is on. On: {_short(running, now)}.")
    else:
        chosen = [w for w in running if w.created_by == ctx.phone] or (running if len(running) == 1 else [])
        if not chosen:
            return (
                f"You started none of the {len(running)} windows on: {_short(running, now)}. "
                f"Text 'maintenance off {running[0].id}' or 'maintenance off all'."
            )
    ended = maintenance.end(conn, [w.id for w in chosen], ctx.phone, now)
    paged = paging.release_held(conn, ctx.services.settings, now)
    reply = "Ended maintenance " + ", ".join(f"#{w.id} ({w.scope})" for w in ended) + "."
    if paged:
        reply += " Paging now: " + ", ".join(f"#{a.id} {a.name}" for a in paged) + "."
    left = [w for w in running if w not in ended]
    if left:
        reply += f" Still on: {_short(left, now)}."
    return reply


def _canonical(ctx: Context) -> str:
    """'2h', '2h instance=db-1', 'off all', 'off 3': what a YES to "did you mean" runs."""
    try:
        request = parse(ctx.args, ctx.text)
    except CommandError:
        return ""
    scope = [_scope_text(request.scope)] if request.scope else []
    if request.off:
        return " ".join(["off", *(["all"] if request.all else []), *map(str, request.numbers), *scope])
    length = [duration_text(request.seconds)] if request.seconds else []
    return " ".join([*map(str, request.numbers), *length, *scope])


def acts(args: list[str]) -> bool:
    """Whether these words start, extend or end a window (a listing changes nothing)."""
    try:
        request = parse(args, " ".join(args))
    except CommandError:
        return True  # unreadable: held to the rules for actions, never run on a question
    return request.off or bool(request.seconds or request.numbers)


@command("maintenance", aliases=("maint", "downtime"), unlimited=True, acts=acts, canonical=_canonical)
def maintenance_(ctx: Context) -> str:
    """maintenance [2h] [alertname|label=value] | off [n|all]: hold pages during planned work; alone: list."""
    request = parse(ctx.args, ctx.text)
    now = db.now()
    with ctx.services.engine.begin() as conn:
        if request.off:
            _need_role(ctx)
            return _off(conn, ctx, request, now)
        if not request.seconds and not request.numbers:
            if request.scope is not None and not ctx.text.rstrip().endswith("?"):
                scope = _scope_text(request.scope)
                raise CommandError(f"How long? e.g. 'maintenance 2h {scope}' (at most 7d).")
            return listing(conn, ctx, now)
        _need_role(ctx)
        return _start(conn, ctx, request, now)
