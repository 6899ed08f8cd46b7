"""oncall: who is on call for each team, and overrides: `oncall take 4h [team]`, `oncall give +1555... 2h [team]`.

Anyone may ask; taking and giving need the responder role. An override ends by itself; the newest
one covering an instant wins, and the handoff texts tell both people (oncall.handoffs).
"""

from __future__ import annotations

import re

from command_processor import CommandError, Context, command
from config import E164
from conversation.arguments import duration_at
from conversation.resolver import duration_text
from conversation.vocabulary import FILLER
from core import db
from core.timeutil import clock, humanize
from incidents import paging
from oncall import routing, store, teams
from oncall.people import display_name
from oncall.teams import Team
from security import allows, mask

MAX_OVERRIDE = 7 * 86400.0
ROLE = "responder"
TAKE_WORDS = frozenset({"take", "cover", "me", "mine", "takeover"})
GIVE_WORDS = frozenset({"give", "hand", "handover", "pass", "swap"})
_PIECE = re.compile(r"\+?\(?\d[\d().-]*")
_NOISE = frozenset({"for", "to", "on", "call", "oncall", "over", "team", "the", "i", "ll", "will"})


def _canonical(ctx: Context) -> str:
    """'take 4h payments', 'give +15550100 2h payments', 'payments': what a YES runs."""
    configured = teams.of(ctx.services.settings)
    words = " ".join(ctx.args).lower().replace(",", " ").split()
    named = [w for w in words if w in configured]
    verb = next((w for w in words if w in TAKE_WORDS | GIVE_WORDS), "")
    if not verb:
        return " ".join(named)
    give = verb in GIVE_WORDS
    phone, others = _number(" ".join(words)) if give else ("", words)
    length = next((duration_text(t[0]) for i in range(len(others)) if (t := duration_at(others, i))), "")
    return " ".join(p for p in ("give" if give else "take", phone, length, *named) if p)


def acts(args: list[str]) -> bool:
    """Whether these words take or give on-call (asking who is on call changes nothing)."""
    return any(word in TAKE_WORDS | GIVE_WORDS for word in args)


@command("oncall", aliases=("rota", "roster"), acts=acts, canonical=_canonical)
def oncall(ctx: Context) -> str:
    """oncall [team] | oncall take 4h [team] | oncall give +1555... 2h [team]: who is on call, and overrides."""
    configured = teams.of(ctx.services.settings)
    if not configured:
        return _without_teams(ctx)
    words = ctx.rest.lower().replace(",", " ").split()
    verb = next((w for w in words if w in TAKE_WORDS | GIVE_WORDS), "")
    if not verb:
        named = [w for w in words if w in configured]
        unknown = [w for w in words if w not in configured and w not in FILLER and w not in _NOISE]
        if unknown and not named:
            raise CommandError(f"No team '{unknown[0][:20]}'. Teams: {', '.join(configured)}.")
        return _listing(ctx, [configured[n] for n in named] or list(configured.values()))
    if not allows(ctx.role, ROLE):
        raise CommandError("Taking or giving on-call needs the responder role.")
    return _override(ctx, configured, words, give=verb in GIVE_WORDS)


def _without_teams(ctx: Context) -> str:
    """Who paging's own fallback pages, so the answer cannot drift from what an alert does."""
    route = paging.fallback(ctx.services.settings)
    if not route.numbers:
        return ("No on-call teams configured, and nobody would be paged: set ALERT_RECIPIENTS or a "
                "responder in AUTHORIZED_NUMBERS (or add teams: to operator.yml).")  # fmt: skip
    chosen = "ALERT_RECIPIENTS" if route.setting == "ALERT_RECIPIENTS" else "responders in AUTHORIZED_NUMBERS"
    numbers = ", ".join(mask(n) for n in route.numbers)
    return f"No on-call teams configured: alerts page {numbers} ({chosen}; add teams: to operator.yml)."


def _listing(ctx: Context, chosen: list[Team]) -> str:
    now, settings = db.now(), ctx.services.settings
    lines = []
    with ctx.services.engine.connect() as conn:
        for team in chosen:
            current = routing.on_call(conn, team, now)
            line = f"{team.name}: {display_name(settings, current.phone)} until {clock(current.until, team.zone, now)}"
            if current.override:
                line += " (override)"
            if current.next_phone:
                line += f", next {display_name(settings, current.next_phone)}"
            lines.append(line)
        for override in reversed(store.active_overrides(conn, now)):
            owner = next((t for t in chosen if t.name == override.team), None)
            if owner is not None:
                lines.append(f"Override {owner.name}: {display_name(settings, override.phone)} "
                             f"{clock(override.starts_at, owner.zone, now)}-{clock(override.ends_at, owner.zone, now)}")  # fmt: skip
    return "\n".join(lines)


def _override(ctx: Context, configured: dict[str, Team], words: list[str], give: bool) -> str:
    phone = ctx.phone
    if give:
        phone, words = _number(ctx.rest)
        if not phone:
            raise CommandError("Give to whom? e.g. 'oncall give +15550100 2h payments'.")
        if not E164.match(phone):
            raise CommandError(f"{mask(phone)} is no E.164 number like +15550100.")
    seconds, team = _duration(words), _team(ctx, configured, words, phone)
    member = team.member(phone)
    if member is None or not member.pageable:
        raise CommandError(f"{mask(phone)} is not a responder of {team.name}; on-call goes to its members.")
    now = db.now()
    with ctx.services.engine.begin() as conn:
        store.add_override(conn, team.name, phone, now, now + seconds, ctx.phone)
        following = routing.on_call(conn, team, now).next_phone
    settings = ctx.services.settings
    then = f", then {display_name(settings, following)}" if following else ""
    person = "You are" if phone == ctx.phone else f"{display_name(settings, phone)} is"
    return f"{person} on call for {team.name} for {humanize(seconds)}, until {clock(now + seconds, team.zone, now)}{then}."


def _number(text: str) -> tuple[str, list[str]]:
    """('+15550100', the other words) from '+1 555-0100 2h': a number typed in pieces, up to 15 digits."""
    digits, rest = "", []
    for word in text.lower().replace(",", " ").split():
        found = re.sub(r"\D", "", word)
        piece = (
            _PIECE.fullmatch(word)
            and (word.startswith("+") or digits or len(found) >= 7)
            and len(digits) < 10
        )
        if piece and len(digits + found) <= 15:
            digits += found
        else:
            rest.append(word)
    return ("+" + digits if digits else ""), rest


def _duration(words: list[str]) -> float:
    for index in range(len(words)):
        taken = duration_at(words, index)
        if taken is not None:
            seconds = taken[0]
            if not 0 < seconds <= MAX_OVERRIDE:
                raise CommandError(f"An override lasts from a minute to {humanize(MAX_OVERRIDE)}; e.g. 4h.")
            return max(60.0, seconds)
    raise CommandError("For how long? e.g. 'oncall take 4h' or 'oncall give +15550100 2h'.")


def _team(ctx: Context, configured: dict[str, Team], words: list[str], phone: str) -> Team:
    named = [configured[w] for w in words if w in configured]
    if named:
        return named[0]
    mine = [t for t in configured.values() if t.member(phone) or t.member(ctx.phone)]
    if len(configured) == 1 or len(mine) == 1:
        return (mine or list(configured.values()))[0]
    raise CommandError(f"Which team? Add its name: {', '.join(configured)}.")
