"""help, status and more: the commands that work on a fresh machine."""

from __future__ import annotations

from command_processor import CommandError, Context, command, registry
from conversation import continuations
from conversation.vocabulary import FILLER, stems
from monitors import check_all

# Words that mean "how is everything?" anywhere in a sentence ("any problems?", "are we ok?").
STATUS_WORDS = (
    "everything", "things", "overview", "summary", "health", "healthy", "systems", "all",
    "problem", "wrong", "fine", "good", "alive", "sitrep", "situation", "update", "report",
    "going", "doing", "ok", "okay", "up", "working", "broken", "down", "issues", "issue",
    "happening", "outage", "healthcheck", "state", "prod", "production", "site", "website",
    "platform", "infra", "infrastructure", "servers", "server", "cluster", "stack", "backends",
)  # fmt: skip
GREETINGS = ("hi", "hello", "hey", "yo")
HELP_WORDS = (*GREETINGS, "list", "usage", "howto", "instructions", "options")
# A message of only these (and filler) needs no answer: an SMS back would only cost money.
THANKS_WORDS = (
    "thank", "thx", "ty", "tks", "tnx", "cheers", "cool", "great", "nice", "awesome", "perfect",
    "noted", "roger", "ok", "okay", "k", "kk", "gotcha", "got", "ta", "np", "good", "alright", "fine",
)  # fmt: skip


def _named(ctx: Context) -> list[str]:
    """The commands a help request names ("help with snoozing" -> snooze)."""
    # "help me", "help with status": filler words are not command names.
    args = [a for a in ctx.args if a not in FILLER and a not in GREETINGS]
    return [n for a in args for form in stems(a) if (n := registry.words.get(form))]


def _help_canonical(ctx: Context) -> str:
    return next(iter(_named(ctx)), "")


@command(
    "help", aliases=("?", "commands", "menu"), keywords=HELP_WORDS, canonical=_help_canonical, instant=True
)
def help_(ctx: Context) -> str:
    """help [command]: what Operator understands."""
    args = [a for a in ctx.args if a not in FILLER and a not in GREETINGS]
    named = _named(ctx)
    if named:
        return registry.commands[named[0]].help
    if len(args) == 1:
        raise CommandError(f"No command '{args[0][:20]}'. Text HELP for the list.")
    # "help! the site is down": a sentence, not a command name; the list is the answer.
    names = ", ".join(c.name for c in registry.visible() if c.name != "help")
    # One SMS (160 GSM-7 characters): every command added costs room here (tests/test_registries.py).
    return f"Commands: {names}. HELP <name> for details."


@command("status", aliases=("st", "s", "sitrep"), keywords=STATUS_WORDS, weak=True)
def status(ctx: Context) -> str:
    """status: one line per configured backend."""
    monitors = ctx.services.monitors
    if not monitors:
        return "No monitors configured."
    results = check_all(monitors, ctx.services.settings.reply_deadline)
    return " | ".join(r.line for r in results)


@command("more", aliases=("next", "m", "continue", "cont"), weak=True)
def more(ctx: Context) -> str:
    """more: the next part of the last long reply."""
    part = continuations.take_next(ctx.services.engine, ctx.phone)
    if part is None:
        return "Nothing more to show. Text HELP for commands."
    return part


@command("thanks", aliases=THANKS_WORDS, hidden=True, fallback=True, instant=True)
def thanks(ctx: Context) -> str:
    """thanks: no reply (an empty answer sends no SMS)."""
    return ""
