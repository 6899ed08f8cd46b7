"""Turns one SMS body into one reply: command registry, word matching, role checks.

Commands register with `@command(...)`; the first docstring line is the help text. A command
receives a `Context` and returns the reply text (the composer splits it into parts). It may raise
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

from conversation.vocabulary import (
    FILLER,
    HOW_TO,
    IF_WORDS,
    INTENTS,
    NEGATION,
    OPENERS,
    PHRASES,
    QUESTION,
    RESERVED,
    SOFT,
    Word,
    stems,
    tokens,
    words_of,
)
from security import allows
from services import Services

logger = logging.getLogger(__name__)

_GLUED = re.compile(r"([a-z]{3,})#?(\d{1,12})")
# "Liked "Reply YES to ack 3 alerts"": an iPhone or Android reaction, quoting our own text.
_REACTION = re.compile(
    r'\s*(?:liked|loved|disliked|laughed at|emphasi[sz]ed|questioned|reacted\s+\S*\s*to|removed\s+\S+\s+from)\s+"',
    re.I,
)
_UNREADABLE = re.compile(r"\s\?+\s")
_ID_WORD = re.compile(r"#?\d{1,12}")
_PAST = ("ed", "d")


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
    services: Services
    text: str = ""
    command: str = ""
    # False when the command word came mid-sentence ("cpu close to limit"): an action then needs
    # an explicit alert id instead of falling back to the last alert texted.
    leading: bool = True


@dataclass
class Command:
    name: str
    func: Callable[[Context], str]
    aliases: tuple[str, ...] = ()
    role: str = "viewer"
    # Words that select this command anywhere in a sentence; a callable gets the services.
    keywords: Iterable[str] | Callable[[Services], Iterable[str]] = ()
    hidden: bool = False
    # How a word of this command counts in a sentence:
    # leading: only as the first meaningful word ("yes", "no": too common elsewhere);
    # weak: yields to a more specific command named in the same message ("status of the db");
    # fallback: only when the whole message is made of its words ("thanks", "ok").
    leading: bool = False
    weak: bool = False
    fallback: bool = False
    # Answers a bare alert id ("#12?") and questions about actions ("was 12 acked?").
    describes_ids: bool = False
    # Handles alerts (ack, snooze, ...): never held back by the inbound rate limit, which is
    # there for queries (backends and SMS cost), not for someone working an incident.
    unlimited: bool = False

    @property
    def help(self) -> str:
        return (self.func.__doc__ or self.name).strip().splitlines()[0]

    def keywords_for(self, services: Services) -> Iterable[str]:
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
        keywords: Iterable[str] | Callable[[Services], Iterable[str]] = (),
        hidden: bool = False,
        **flags: bool,
    ) -> Callable[[Callable[[Context], str]], Callable[[Context], str]]:
        """Register the decorated function as command `name` (flags: leading, weak, fallback, describes_ids,
        unlimited)."""

        def decorate(func: Callable[[Context], str]) -> Callable[[Context], str]:
            for word in (name, *aliases):
                if word in RESERVED:
                    raise ValueError(f"{word!r} is a Twilio keyword and cannot be a command")
                if word in self.words and self.words[word] != name:
                    raise ValueError(f"{word!r} already belongs to {self.words[word]!r}")
                self.words[word] = name
            self.commands[name] = Command(name, func, tuple(aliases), role, keywords, hidden, **flags)
            return func

        return decorate

    def visible(self) -> list[Command]:
        return [c for c in self.commands.values() if not c.hidden]


registry = Registry()
command = registry.command


def distance(a: str, b: str, limit: int) -> int:
    """Edits (insert, delete, substitute, swap two neighbours) from a to b; limit+1 when above limit."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    before, row = None, list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            current[j] = min(row[j] + 1, current[j - 1] + 1, row[j - 1] + (ca != cb))
            if before is not None and i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                current[j] = min(current[j], before[j - 2] + 1)
        before, row = row, current
        if min(row) > limit:
            return limit + 1
    return min(row[-1], limit + 1)


@dataclass(frozen=True)
class Outcome:
    reply: str
    command: str
    outcome: str  # ok | error | unknown | forbidden


class CommandProcessor:
    """Resolves a body to a command and runs it under the sender's role.

    Resolution, in order: a whole-message intent ("on it"); the first word; the first
    meaningful word that is a command (plain forms too: "silenced", "acking"); a keyword a command
    claims ("cpu"); a bare alert id; thanks-only messages; filler-only small talk. When nothing
    matches, one misspelt word is corrected ("stauts") and matching runs again. A weak command
    then yields to a specific one ("status of the db" -> db), and an action word turns into a
    question about the alert ("was 12 acked?") or is called off ("don't ack 12" -> no).
    """

    def __init__(self, services: Services, reg: Registry = registry):
        self.services = services
        self.registry = reg

    def resolve(self, text: str) -> tuple[Command | None, list[str], str]:
        """(command, args, rest) for `text`; command None when nothing matches."""
        if _REACTION.match(text):
            return None, [], ""  # a phone's reaction quotes our own text, commands and all
        text = self._first_line(text)
        words = self._prepare(text)
        if not words:
            # A bare "?" (or "??") is the classic way to ask for help on SMS.
            bare = text.strip()
            if bare and set(bare) == {"?"} and "?" in self.registry.words:
                return self.registry.commands[self.registry.words["?"]], [], ""
            return None, [], ""
        intent = self._intent([w.text for w in words])
        if intent is not None:
            return intent, [], ""
        found = self._find(words, text)
        if found is None:
            corrected = self._corrected(words)
            if corrected is not None:
                words, found = corrected, self._find(corrected, text)
        if found is None:
            return None, [w.text for w in words if w.text not in FILLER], ""
        cmd, index = self._adjust(*found, words, text)
        if cmd is None:
            return None, [w.text for w in words if w.text not in FILLER], ""
        return (cmd, *self._arguments(words, index, text))

    # --- matching steps ---------------------------------------------------------------------

    def _prepare(self, text: str) -> list[Word]:
        """Words, with "ack12" split and several-word phrases ("new relic") made one."""
        words: list[Word] = []
        for word in words_of(text):
            glued = _GLUED.fullmatch(word.text)
            if glued and glued.group(1) in self.registry.words:
                cut = word.start + len(glued.group(1))
                words += [Word(glued.group(1), word.start, cut), Word(glued.group(2), cut, word.end)]
            else:
                words.append(word)
        out, i = [], 0
        while i < len(words):
            for n in (3, 2):
                phrase = " ".join(w.text for w in words[i : i + n])
                if len(words) - i >= n and phrase in PHRASES:
                    out.append(Word(PHRASES[phrase], words[i].start, words[i + n - 1].end))
                    i += n
                    break
            else:
                out.append(words[i])
                i += 1
        return out

    def _first_line(self, text: str) -> str:
        """The first line that says something: one command per SMS ("ack 12" + a signature)."""
        lines = [line for line in text.splitlines() if line.strip()]
        if len(lines) < 2:
            return text
        for line in lines:
            for word in words_of(line):
                cmd = self._word(word.text)
                if word.text not in FILLER and not (cmd and cmd.fallback):
                    return line
        return text

    def _intent(self, texts: list[str]) -> Command | None:
        core = " ".join(t for t in texts if t not in SOFT)
        name = self.registry.words.get(INTENTS.get(core, ""))
        return self.registry.commands[name] if name else None

    def _word(self, word: str) -> Command | None:
        """The command a word names, in any plain form."""
        for form in stems(word):
            name = self.registry.words.get(form)
            if name:
                return self.registry.commands[name]
        return None

    def _find(self, words: list[Word], text: str) -> tuple[Command, int | None] | None:
        """The command and the index of the word that named it (None: a keyword or id chose it)."""
        texts = [w.text for w in words]
        first = self._word(texts[0])
        if first is not None and not first.fallback:
            return first, 0
        meaningful = [i for i, t in enumerate(texts) if t not in FILLER]
        for n, i in enumerate(meaningful):
            cmd = self._word(texts[i])
            if cmd is None or cmd.fallback or (n > 0 and (cmd.leading or len(texts[i]) == 1)):
                continue
            return cmd, i
        cmd = self._by_keyword([texts[i] for i in meaningful])
        if cmd is not None:
            return cmd, None
        describer = self._describer()
        if meaningful and describer and all(_ID_WORD.fullmatch(texts[i]) for i in meaningful):
            return describer, None
        thanks = self._thanks(texts, text)
        if thanks is not None:
            return thanks, None
        if not meaningful:
            # Small talk made only of filler ("how's it going?", "are we ok?") may still hit a
            # keyword a command claims; filler never outranks a meaningful word above.
            cmd = self._by_keyword(texts)
            if cmd is not None:
                return cmd, None
        return None

    def _by_keyword(self, words: list[str], skip: Command | None = None) -> Command | None:
        claimed = [
            (cmd, set(cmd.keywords_for(self.services)))
            for cmd in self.registry.commands.values()
            if cmd is not skip
        ]
        own = set(skip.keywords_for(self.services)) if skip else set()
        for word in words:
            forms = [f for f in stems(word) if f not in own]
            for cmd, keywords in claimed:
                if any(f in keywords for f in forms):
                    return cmd
        return None

    def _describer(self) -> Command | None:
        return next((c for c in self.registry.commands.values() if c.describes_ids), None)

    def _thanks(self, texts: list[str], text: str) -> Command | None:
        """The fallback command when the message is only its words ("ok thanks!"), not a question."""
        if "?" in text:
            return None
        found = None
        for t in texts:
            name = self.registry.words.get(t)
            cmd = self.registry.commands[name] if name else None
            if cmd is not None and cmd.fallback:
                found = found or cmd
            elif t not in FILLER or t in QUESTION:
                return None
        return found

    def _corrected(self, words: list[Word]) -> list[Word] | None:
        """The words with the first clear misspelling of a command or keyword put right."""
        vocabulary = {w: n for w, n in self.registry.words.items() if len(w) >= 4}
        for cmd in self.registry.commands.values():
            vocabulary.update({k: cmd.name for k in cmd.keywords_for(self.services) if len(k) >= 4})
        for i, word in enumerate(words):
            t = word.text
            if len(t) < 4 or not t.isalpha() or t in FILLER or t in NEGATION or t in vocabulary:
                continue
            limit = 1 if len(t) < 8 else 2
            scored = [(distance(t, v, limit), v) for v in vocabulary if v[0] == t[0]]
            best = min((d for d, _ in scored), default=limit + 1)
            names = {vocabulary[v] for d, v in scored if d == best}
            if best <= limit and len(names) == 1:
                choice = min(v for d, v in scored if d == best)
                return [*words[:i], Word(choice, word.start, word.end), *words[i + 1 :]]
        return None

    def _adjust(
        self, cmd: Command, index: int | None, words: list[Word], text: str
    ) -> tuple[Command | None, int | None]:
        """Weak commands yield to specific ones; actions asked about or called off change."""
        texts = [w.text for w in words]
        if cmd.weak:
            cmd, index = self._specific(cmd, index, texts)
        if cmd.role == "viewer" or index is None:
            return cmd, index
        before = set(texts[:index])
        opening = [t for t in texts[:index] if t not in OPENERS][:2]
        how_to = opening[:1] == ["how"] and opening[1:] and opening[1] in HOW_TO
        what_is = opening[:1] == ["what"] and opening[1:2] in (["does"], ["do"], ["is"])
        if how_to or (what_is and not texts[index].endswith(_PAST)):
            # "how do I snooze?", "what does ack do?" want the help line, not the alerts.
            name = self.registry.words.get("help")
            return (self.registry.commands[name], None) if name else (cmd, index)
        asked = text.rstrip().endswith("?") and texts[index].endswith(_PAST)
        if (opening and opening[0] in QUESTION) or before & IF_WORDS or asked:
            describer = self._describer()
            return (describer, index) if describer else (cmd, index)
        if before & NEGATION:
            name = self.registry.words.get("no")
            return (self.registry.commands[name] if name else None), index
        return cmd, index

    def _specific(self, weak: Command, index: int | None, texts: list[str]) -> tuple[Command, int | None]:
        """A more specific command named in the message than the weak one that matched."""
        for i, t in enumerate(texts):
            if i == index or t in FILLER or len(t) == 1:
                continue
            cmd = self._word(t)
            if cmd is not None and cmd is not weak and not (cmd.weak or cmd.leading or cmd.fallback):
                return cmd, i
        others = [t for i, t in enumerate(texts) if i != index and t not in FILLER]
        cmd = self._by_keyword(others, skip=weak)
        if cmd is not None:
            return cmd, None
        describer = self._describer()
        if describer is not None and any(_ID_WORD.fullmatch(t) for t in others):
            return describer, None
        return weak, index

    @staticmethod
    def _arguments(words: list[Word], index: int | None, text: str) -> tuple[list[str], str]:
        """(args, rest): the other words, and the text around the command word as typed."""
        texts = [w.text for w in words]
        if index is None:
            args = [t for t in texts if t not in FILLER]
            return args, " ".join(args)
        args = texts[:index] + texts[index + 1 :]
        # Leading filler ("show me") is dropped; the rest keeps its quotes and case.
        first = next((k for k in range(index) if texts[k] not in FILLER), index)
        before = text[words[first].start : words[index].start] if first < index else ""
        return args, (before + text[words[index].end :]).strip()

    def run(
        self, text: str, phone: str, role: str, resolved: tuple[Command | None, list[str], str] | None = None
    ) -> Outcome:
        """The reply for `text` from `phone` (`resolved`: what `resolve(text)` already said); never raises."""
        cmd, args, rest = resolved or self.resolve(text)
        if cmd is None:
            return Outcome(self.unknown(text), "unknown", "unknown")
        if not allows(role, cmd.role):
            return Outcome(f"'{cmd.name}' needs the {cmd.role} role; you are {role}.", cmd.name, "forbidden")
        if cmd.role != "viewer" and _UNREADABLE.search(f" {rest} "):
            # Characters SMS could not carry arrive as '?' ("ack 一"): not a bare "ack".
            return Outcome(
                f"Could not read part of that; use plain digits, e.g. '{cmd.name} 12'.", cmd.name, "error"
            )
        ctx = Context(
            phone=phone,
            role=role,
            args=args,
            rest=rest,
            services=self.services,
            text=text,
            command=cmd.name,
            leading=self._leads(cmd, text),
        )
        try:
            return Outcome(cmd.func(ctx), cmd.name, "ok")
        except CommandError as exc:
            return Outcome(str(exc), cmd.name, "error")
        except Exception:
            logger.exception("command %s failed", cmd.name)
            return Outcome(f"'{cmd.name}' failed inside Operator; the logs have details.", cmd.name, "error")

    def _leads(self, cmd: Command, text: str) -> bool:
        """Whether `cmd` was named first ("ok ack it") or by a whole-message phrase ("on it")."""
        words = tokens(self._first_line(text))
        if self._intent(words) is cmd:
            return True
        first = next((w for w in words if w not in FILLER and w not in SOFT and w not in OPENERS), "")
        return self._word(first) is cmd

    def unknown(self, text: str) -> str:
        if _REACTION.match(text):
            return "Operator cannot read reactions; text YES, NO or HELP."
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
