"""Turns one SMS body into one reply: command registry, word matching, role checks.

Commands register with `@command(...)`; the first docstring line is the help text. A command
receives a `Context` and returns the reply text (the composer paginates it). It may raise
`CommandError` for a clear user-facing refusal; any other exception becomes a short generic reply
and a logged traceback.

Matching is forgiving because people type on phones: case, surrounding punctuation and filler
words don't matter. "STATUS!", "status please" and "how's the cpu looking?" all work: the first
known command word (or alias, or a keyword a command claims, like a metric name) decides, and the
other meaningful words become arguments.
"""

from __future__ import annotations

import difflib
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from security import allows

logger = logging.getLogger(__name__)

# Twilio handles these itself (opt-out / opt-in); they must never be commands.
RESERVED = frozenset("stop stopall unsubscribe cancel end quit start unstop optout optin revoke".split())

# Words that carry no meaning for matching ("how's the cpu looking?" -> "cpu").
FILLER = frozenset(
    """a an the is are was were be been am do does did how hows how's what whats what's
    whats's which who where when why can could would should will please pls plz me my our us
    we i you your it its it's for of on in at to from with about any anything some show
    tell give get check see look looking looks doing going state like right now currently
    current latest today ok okay hey hi hello there is there's yo just quick quickly again
    and or but so then this that these those up there's""".split()
)

_TOKEN = re.compile(r"[^\s]+")
_EDGE_PUNCT = "!?.,;:'\"()[]{}<>`~*_¿¡"


class CommandError(Exception):
    """A refusal the user should read as is ("alert #12 not found")."""


@dataclass
class Context:
    """What a command gets: who asked, with which words, and the app's services."""

    phone: str
    role: str
    args: list[str]
    # The text after the command word, as typed (for raw PromQL, quoted search words).
    rest: str
    services: Any
    text: str = ""


@dataclass
class Command:
    name: str
    func: Callable[[Context], str]
    aliases: tuple[str, ...] = ()
    role: str = "viewer"
    # Words that select this command anywhere in a sentence; a callable gets the services.
    keywords: Iterable[str] | Callable[[Any], Iterable[str]] = ()
    hidden: bool = False

    @property
    def help(self) -> str:
        return (self.func.__doc__ or self.name).strip().splitlines()[0]

    def keywords_for(self, services: Any) -> Iterable[str]:
        return self.keywords(services) if callable(self.keywords) else self.keywords


@dataclass
class Registry:
    commands: dict[str, Command] = field(default_factory=dict)
    words: dict[str, str] = field(default_factory=dict)

    def command(
        self,
        name: str,
        aliases: Iterable[str] = (),
        role: str = "viewer",
        keywords: Iterable[str] | Callable[[Any], Iterable[str]] = (),
        hidden: bool = False,
    ) -> Callable[[Callable[[Context], str]], Callable[[Context], str]]:
        """Register the decorated function as command `name`."""

        def decorate(func: Callable[[Context], str]) -> Callable[[Context], str]:
            for word in (name, *aliases):
                if word in RESERVED:
                    raise ValueError(f"{word!r} is a Twilio keyword and cannot be a command")
                if word in self.words and self.words[word] != name:
                    raise ValueError(f"{word!r} already belongs to {self.words[word]!r}")
                self.words[word] = name
            self.commands[name] = Command(name, func, tuple(aliases), role, keywords, hidden)
            return func

        return decorate

    def visible(self) -> list[Command]:
        return [c for c in self.commands.values() if not c.hidden]


registry = Registry()
command = registry.command


def tokens(text: str) -> list[str]:
    """Lower-cased words with surrounding punctuation removed."""
    words = (t.strip(_EDGE_PUNCT).lower() for t in _TOKEN.findall(text))
    return [w for w in words if w]


@dataclass(frozen=True)
class Outcome:
    reply: str
    command: str
    outcome: str  # ok | error | unknown | forbidden


class CommandProcessor:
    """Resolves a body to a command and runs it under the sender's role."""

    def __init__(self, services: Any, reg: Registry = registry):
        self.services = services
        self.registry = reg

    def resolve(self, text: str) -> tuple[Command | None, list[str], str]:
        """(command, args, rest) for `text`; command None when nothing matches."""
        words = tokens(text)
        if not words:
            # A bare "?" (or "??") is the classic way to ask for help on SMS.
            bare = text.strip()
            if bare and set(bare) == {"?"} and "?" in self.registry.words:
                return self.registry.commands[self.registry.words["?"]], [], ""
            return None, [], ""
        raw_parts = text.strip().split(None, 1)
        first = words[0]
        if first in self.registry.words:
            rest = raw_parts[1].strip() if len(raw_parts) > 1 else ""
            return self.registry.commands[self.registry.words[first]], words[1:], rest
        meaningful = [w for w in words if w not in FILLER]
        for i, word in enumerate(meaningful):
            name = self.registry.words.get(word) or self.registry.words.get(word.rstrip("s"))
            if name:
                args = meaningful[:i] + meaningful[i + 1 :]
                return self.registry.commands[name], args, " ".join(args)
        cmd = self._by_keyword(meaningful)
        if cmd is not None:
            return cmd, meaningful, " ".join(meaningful)
        if not meaningful:
            # Small talk made only of filler ("how's it going?", "are we ok?") may still hit a
            # keyword a command claims; filler never outranks a meaningful word above.
            cmd = self._by_keyword(words)
            if cmd is not None:
                return cmd, [], ""
        return None, meaningful, ""

    def _by_keyword(self, words: list[str]) -> Command | None:
        claimed = [(cmd, set(cmd.keywords_for(self.services))) for cmd in self.registry.commands.values()]
        for word in words:
            for cmd, keywords in claimed:
                if word in keywords or (len(word) > 3 and word.endswith("s") and word[:-1] in keywords):
                    return cmd
        return None

    def run(self, text: str, phone: str, role: str) -> Outcome:
        """The reply for `text` from `phone`; never raises."""
        cmd, args, rest = self.resolve(text)
        if cmd is None:
            return Outcome(self.unknown(text), "unknown", "unknown")
        if not allows(role, cmd.role):
            return Outcome(f"'{cmd.name}' needs the {cmd.role} role; you are {role}.", cmd.name, "forbidden")
        ctx = Context(phone=phone, role=role, args=args, rest=rest, services=self.services, text=text)
        try:
            return Outcome(cmd.func(ctx), cmd.name, "ok")
        except CommandError as exc:
            return Outcome(str(exc), cmd.name, "error")
        except Exception:
            logger.exception("command %s failed", cmd.name)
            return Outcome(f"'{cmd.name}' failed inside Operator; the logs have details.", cmd.name, "error")

    def unknown(self, text: str) -> str:
        words = tokens(text)
        if not words:
            return "Empty message. Text HELP for the list of commands."
        meaningful = [w for w in words if w not in FILLER]
        word = (meaningful or words)[0][:20]
        names = [c.name for c in self.registry.visible()]
        candidates = sorted(set(names) | {w for w in self.registry.words if len(w) > 2})
        close = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
        hint = f" Did you mean '{self.registry.words[close[0]]}'?" if close else ""
        return f"Unknown command '{word}'.{hint} Text HELP for the list."
