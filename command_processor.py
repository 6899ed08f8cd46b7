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
from dataclasses import dataclass, field, replace

from config import ConfigError
from conversation import pending, resolver
from conversation.arguments import parse_target
from conversation.resolver import THRESHOLD, Reading
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
    # Searches text (logs): what a sentence with a time range, a search verb or quotes asks for.
    searches: bool = False
    # Answers from the text alone, touching no store or backend (help): the inbound path stores
    # the text and its answer in one transaction instead of before and after the run.
    instant: bool = False
    # The arguments in canonical form ("12 30m", "payment error 1h"); default: ids or all, duration.
    canonical: Callable[[Context], str] | None = None
    # Whether these words make it change state ("maintenance 2h", "oncall give ..."), for a command
    # open to viewers that checks the role itself; default: every command that needs a role acts.
    acts: Callable[[list[str]], bool] | None = None

    def changes_state(self, args: list[str]) -> bool:
        """Whether running with `args` changes state: then a question or a negation never runs it."""
        return self.acts(args) if self.acts is not None else self.role != "viewer"

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
        canonical: Callable[[Context], str] | None = None,
        acts: Callable[[list[str]], bool] | None = None,
        **flags: bool,
    ) -> Callable[[Callable[[Context], str]], Callable[[Context], str]]:
        """Register the decorated function as command `name` (flags: leading, weak, fallback,
        describes_ids, searches, unlimited, instant); `canonical` gives its arguments in canonical
        form; `acts` says which words make a command open to viewers change state."""

        def decorate(func: Callable[[Context], str]) -> Callable[[Context], str]:
            for word in (name, *aliases):
                if word in RESERVED:
                    raise ValueError(f"{word!r} is a Twilio keyword and cannot be a command")
                if word in self.words and self.words[word] != name:
                    raise ValueError(f"{word!r} already belongs to {self.words[word]!r}")
                self.words[word] = name
            self.commands[name] = Command(
                name, func, tuple(aliases), role, keywords, hidden, canonical=canonical, acts=acts, **flags
            )
            return func

        return decorate

    def visible(self) -> list[Command]:
        return [c for c in self.commands.values() if not c.hidden]


registry = Registry()
command = registry.command


# The longest phrase matched as one (built-in PHRASES have up to 3 words, the file's up to 5).
_LONGEST = 5


def parse_phrases(section: object, processor: CommandProcessor) -> dict[tuple[str, ...], list[str]]:
    """`phrases:` from the config file: words or phrasings -> a command, a canonical command
    ("metrics cpu") or a word a command claims (a metric name); ConfigError naming a bad entry."""
    if not isinstance(section, dict):
        raise ConfigError(
            "OPERATOR_CONFIG: `phrases` must map words or phrasings to commands or metric names"
        )
    known = processor._known()
    parsed: dict[tuple[str, ...], list[str]] = {}
    for phrase, target in section.items():
        key = tuple(tokens(str(phrase)))
        words = tokens(target) if isinstance(target, str) else []
        where = f"OPERATOR_CONFIG: phrases.{str(phrase)[:40]!r}"
        if not key or len(key) > _LONGEST:
            raise ConfigError(f"{where} must be 1 to {_LONGEST} words")
        if " ".join(key) in RESERVED:
            raise ConfigError(
                f"{where} is a Twilio keyword (STOP, START...): Twilio acts on it, not Operator"
            )
        if not words or not any(form in known for form in stems(words[0])):
            raise ConfigError(
                f"{where} must name a command or a metric (e.g. status, db, metrics cpu, cpu), "
                f"not {str(target)[:40]!r}"
            )
        parsed[key] = words
    return parsed


# The pending question "which of these did you mean?" (conversation.pending).
CHOOSE = "choose"
# Confidence by how the command was found, and the reason `flask parse` prints.
_HOW = {
    "first": (1.0, "command word '{}'"),
    "word": (0.85, "command word '{}' mid-sentence"),
    "keyword": (0.8, "'{}' is a word it claims"),
    "id": (0.9, "a bare alert id"),
    "thanks": (0.9, "thanks only"),
    "small talk": (0.6, "small talk with '{}'"),
}


def default_canonical(args: list[str], targets: bool, acts: bool) -> str:
    """For a command on alerts: ids (or `all`, then a duration, for one that acts on them)."""
    if not targets:
        return ""
    target = parse_target(args)
    parts = [str(i) for i in dict.fromkeys(target.ids)] or (["all"] if target.all and acts else [])
    if target.seconds > 0 and acts:
        parts.append(resolver.duration_text(target.seconds))
    return " ".join(parts)


@dataclass(frozen=True)
class Outcome:
    reply: str
    command: str
    outcome: str  # ok | error | unknown | forbidden | asked
    canonical: str = "none"
    confidence: float = 0.0


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
        self._words: dict[str, str] | None = None

    def resolve(self, text: str) -> tuple[Command | None, list[str], str]:
        """(command, args, rest) for `text`; command None when nothing matches."""
        reading = self.interpret(text)
        cmd = self.registry.commands[reading.name] if reading.name else None
        return cmd, reading.args, reading.rest

    def interpret(self, text: str) -> Reading:
        """The best reading of `text`, scored, with a close second when a typo fits two commands."""
        if _REACTION.match(text):
            return Reading(None, reason="a phone's reaction, quoting Operator's own text")
        line = self._first_line(text)
        words = self._prepare(line)
        if not words:
            # A bare "?" (or "??") is the classic way to ask for help on SMS.
            bare = line.strip()
            if bare and set(bare) == {"?"} and "?" in self.registry.words:
                return self._scored(
                    Reading(self.registry.words["?"], confidence=1.0, reason="a bare '?'"), line
                )
            return Reading(None, reason="no words")
        texts = [w.text for w in words]
        intent = self._intent(texts)
        if intent is not None:
            reading = Reading(intent.name, confidence=0.95, reason="a whole-message phrase")
            return self._scored(reading, line)
        readings = [self._read(words, line)]
        if readings[0].name is None:
            fixed = [self._read(w, line, sim, note) for w, sim, note in self._corrections(words)]
            readings = [r for r in fixed if r.name] or [self._as_search(readings[0], words, line, None)]
        readings.sort(key=lambda r: -r.confidence)
        best = readings[0]
        others = [r for r in readings[1:] if r.canonical != best.canonical]
        return replace(best, runner_up=others[0]) if others else best

    def _read(self, words: list[Word], text: str, similar: float = 1.0, note: str = "") -> Reading:
        """One reading of the words as they stand (`similar` < 1 when a typo was corrected)."""
        meaningful = [w.text for w in words if w.text not in FILLER]
        found = self._find(words, text)
        cmd: Command | None = None
        if found is not None:
            cmd, index, how = found
            before = cmd
            cmd, index = self._adjust(cmd, index, words, text)
        if cmd is None or found is None:
            return Reading(None, meaningful, reason="no command word")
        base, why = _HOW[how[0]]
        reason = why.format(how[1]) + (f", read as {cmd.name}" if cmd is not before else "")
        confidence = base * (0.5 + 0.5 * similar)
        args, rest = self._arguments(words, index, text)
        acts = cmd.changes_state(args)
        if acts and self._asked(words, index, text):
            # "should we start maintenance 2h?": a question is answered with a question, never run.
            confidence, reason = min(confidence, 0.7), reason + ", asked as a question"
        after = [w.text for w in words[(index or 0) + 1 :]]
        if acts and any(self._calls_off(t) for t in after):
            # "ack 12, no wait", "snooze 12 never mind": the sentence takes it back.
            confidence, reason = min(confidence, 0.6), reason + ", with a word that calls it off"
        leading = self._leads(cmd, " ".join(w.text for w in words))
        reading = Reading(cmd.name, args, rest, leading, confidence, note + reason)
        return self._scored(self._as_search(reading, words, text, index), text)

    @staticmethod
    def _asked(words: list[Word], index: int | None, text: str) -> bool:
        """Whether the sentence asks rather than tells: a '?', a question word or 'if' before the command."""
        texts = [w.text for w in words]
        before = [t for t in texts[: index or 0] if t not in OPENERS]
        return (
            text.rstrip().endswith("?")
            or bool(before[:1] and before[0] in QUESTION)
            or bool(set(before) & IF_WORDS)
        )

    def _calls_off(self, word: str) -> bool:
        """A negation, or a word of the command that drops a question ("no", "nvm", "abort")."""
        cmd = self._word(word) if len(word) > 1 else None
        return word in NEGATION or (cmd is not None and cmd.name == self.registry.words.get("no"))

    def _as_search(self, reading: Reading, words: list[Word], text: str, index: int | None) -> Reading:
        """A log search instead, when the sentence has a range, a search verb, quotes or a subject.

        Only a reading that no command word chose gives way: "ack 12" stays ack, "errors today"
        becomes logs, and the state-changing commands are never replaced.
        """
        cmd = self.registry.commands[reading.name] if reading.name else None
        if cmd is not None and (index is not None or cmd.changes_state(reading.args) or cmd.searches):
            return reading
        search = next((c for c in self.registry.commands.values() if c.searches), None)
        if search is None:
            return reading
        why = resolver.log_signals([w.text for w in words], text, self._known())
        if not why:
            return reading
        args = [w.text for w in words if w.text not in FILLER]
        found = Reading(search.name, args, text.strip(), False, 0.85, f"a log search: {why}")
        return self._scored(found, text)

    def _scored(self, reading: Reading, text: str) -> Reading:
        return replace(reading, canonical=self.canonical(reading, text))

    def canonical(self, reading: Reading, text: str = "") -> str:
        """'snooze 12 30m', 'logs payment error 1h', 'metrics cpu', 'none': what the reading runs."""
        if reading.name is None:
            return "none"
        cmd = self.registry.commands[reading.name]
        ctx = Context("", "", reading.args, reading.rest, self.services, text, cmd.name, reading.leading)
        targets = cmd.role != "viewer" or cmd.describes_ids
        tail = (
            cmd.canonical(ctx)
            if cmd.canonical
            else default_canonical(reading.args, targets, cmd.role != "viewer")
        )
        return f"{cmd.name} {tail}".strip()

    def check_phrases(self) -> None:
        """Refuse to start with a `phrases:` entry that names nothing (ConfigError naming it)."""
        self._phrases()

    def _known(self) -> dict[str, str]:
        """Every word a command or a keyword claims -> the command's name."""
        if self._words is None:
            known = dict(self.registry.words)
            for cmd in self.registry.commands.values():
                known.update({k: cmd.name for k in cmd.keywords_for(self.services) if k not in known})
            self._words = known
        return self._words

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
        own = self._phrases()
        while i < len(words):
            for n in range(min(_LONGEST, len(words) - i), 0, -1):
                key = tuple(w.text for w in words[i : i + n])
                start, end = words[i].start, words[i + n - 1].end
                if key in own:  # the config file's phrases: they win over the built-in ones
                    out += [Word(t, start, end) for t in own[key]]
                elif n > 1 and " ".join(key) in PHRASES:
                    out.append(Word(PHRASES[" ".join(key)], start, end))
                else:
                    continue
                i += n
                break
            else:
                out.append(words[i])
                i += 1
        return out

    def _phrases(self) -> dict[tuple[str, ...], list[str]]:
        """The `phrases:` of the config file (checked at start by `check_phrases`)."""
        settings = getattr(self.services, "settings", None)
        section = settings.file.get("phrases") if settings is not None else None
        return parse_phrases(section, self) if section else {}

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

    def _find(self, words: list[Word], text: str) -> tuple[Command, int | None, tuple[str, str]] | None:
        """The command, the index of the word that named it (None: a keyword or id chose it), and how."""
        texts = [w.text for w in words]
        first = self._word(texts[0])
        if first is not None and not first.fallback:
            return first, 0, ("first", texts[0])
        meaningful = [i for i, t in enumerate(texts) if t not in FILLER]
        for n, i in enumerate(meaningful):
            cmd = self._word(texts[i])
            if cmd is None or cmd.fallback or (n > 0 and (cmd.leading or len(texts[i]) == 1)):
                continue
            return cmd, i, ("first" if n == 0 else "word", texts[i])
        claimed = self._by_keyword([texts[i] for i in meaningful])
        if claimed is not None:
            return claimed[0], None, ("keyword", claimed[1])
        describer = self._describer()
        if meaningful and describer and all(_ID_WORD.fullmatch(texts[i]) for i in meaningful):
            return describer, None, ("id", texts[meaningful[0]])
        thanks = self._thanks(texts, text)
        if thanks is not None:
            return thanks, None, ("thanks", "")
        if not meaningful:
            # Small talk made only of filler ("how's it going?", "are we ok?") may still hit a
            # keyword a command claims; filler never outranks a meaningful word above.
            claimed = self._by_keyword(texts)
            if claimed is not None:
                return claimed[0], None, ("small talk", claimed[1])
        return None

    def _by_keyword(self, words: list[str], skip: Command | None = None) -> tuple[Command, str] | None:
        """The first command claiming one of `words` (in a plain form), and the word."""
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
                    return cmd, word
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

    def _corrections(self, words: list[Word]) -> list[tuple[list[Word], float, str]]:
        """The words with the first misspelling of a command or keyword put right, once per command
        it could name (two for "a typo between two commands"), with how similar each fix is."""
        vocabulary = {w: n for w, n in self._known().items() if len(w) >= 4}
        for i, word in enumerate(words):
            t = word.text
            if len(t) < 4 or not t.isalpha() or t in FILLER or t in NEGATION or t in vocabulary:
                continue
            if t in resolver.TIME_WORDS or resolver.error_word(t):
                continue
            near = resolver.closest(t, [v for v in vocabulary if v[0] == t[0]], 1 if len(t) < 8 else 2)
            if not near:
                continue
            best = near[0][1]
            by_command: dict[str, str] = {}
            for choice, edits in near:
                if edits == best:
                    by_command.setdefault(vocabulary[choice], choice)
            return [
                (
                    [*words[:i], Word(choice, word.start, word.end), *words[i + 1 :]],
                    resolver.similarity(t, choice),
                    f"'{t[:20]}' read as '{choice}', ",
                )
                for choice in list(by_command.values())[:2]
            ]
        return []

    def _adjust(
        self, cmd: Command, index: int | None, words: list[Word], text: str
    ) -> tuple[Command | None, int | None]:
        """Weak commands yield to specific ones; actions asked about or called off change."""
        texts = [w.text for w in words]
        if cmd.weak:
            cmd, index = self._specific(cmd, index, texts)
        args = self._arguments(words, index, text)[0] if index is not None else []
        if index is None or not cmd.changes_state(args):
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
        if cmd.acts is None and ((opening and opening[0] in QUESTION) or before & IF_WORDS or asked):
            # "was 12 acked?", "should I ack 12": about the alert. A command with its own `acts`
            # ("should we start maintenance 2h?") is asked back instead (_read caps it).
            describer = self._describer()
            return (describer, index) if describer else (cmd, index)
        if before & NEGATION and cmd.changes_state([a for a in args if a not in NEGATION]):
            # Called off, unless the word is the action itself ("cancel maintenance" ends it).
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
        claimed = self._by_keyword(others, skip=weak)
        if claimed is not None:
            return claimed[0], None
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
        # A phrase from the config file ("burning" -> "logs checkout error") has no typed text.
        span = (words[index].start, words[index].end)
        given = [w.text for w in words[index + 1 :] if (w.start, w.end) == span]
        return args, " ".join([before.strip(), *given, text[words[index].end :].strip()]).strip()

    def run(self, text: str, phone: str, role: str, read: Reading | None = None) -> Outcome:
        """The reply for `text` from `phone` (`read`: what `interpret(text)` already said); never raises."""
        reading = self._chosen(text, phone) or read or self.interpret(text)

        def answer(reply: str, command: str, outcome: str) -> Outcome:
            return Outcome(reply, command, outcome, reading.canonical, round(reading.confidence, 3))

        if reading.name is None:
            return answer(self.unknown(text), "unknown", "unknown")
        cmd = self.registry.commands[reading.name]
        if not allows(role, cmd.role):
            return answer(f"'{cmd.name}' needs the {cmd.role} role; you are {role}.", cmd.name, "forbidden")
        acts = cmd.changes_state(reading.args)
        if acts and _UNREADABLE.search(f" {reading.rest} "):
            # Characters SMS could not carry arrive as '?' ("ack 一"): not a bare "ack".
            return answer(
                f"Could not read part of that; use plain digits, e.g. '{cmd.name} 12'.", cmd.name, "error"
            )
        if reading.runner_up is not None or (acts and reading.confidence < THRESHOLD):
            # Never act on a guess: one short question, answered by YES, 1 or 2.
            return answer(self._ask(reading, phone), "ask", "ok")
        ctx = Context(
            phone=phone,
            role=role,
            args=reading.args,
            rest=reading.rest,
            services=self.services,
            text=text,
            command=cmd.name,
            leading=reading.leading,
        )
        try:
            return answer(cmd.func(ctx), cmd.name, "ok")
        except CommandError as exc:
            return answer(str(exc), cmd.name, "error")
        except Exception:
            logger.exception("command %s failed", cmd.name)
            return answer(f"'{cmd.name}' failed inside Operator; the logs have details.", cmd.name, "error")

    def _ask(self, reading: Reading, phone: str) -> str:
        """Keep the readings as this number's question and ask it."""
        options = [reading.canonical] + ([reading.runner_up.canonical] if reading.runner_up else [])
        with self.services.engine.begin() as conn:
            pending.ask(conn, phone, {"op": CHOOSE, "options": options})
        if len(options) == 1:
            return f"Did you mean '{options[0]}'? Reply YES to run it."
        return f"Did you mean 1) {options[0]} or 2) {options[1]}? Reply 1 or 2 (YES for 1)."

    def _chosen(self, text: str, phone: str) -> Reading | None:
        """The reading picked by YES, 1 or 2 when this number was asked which one it meant."""
        word = text.strip().strip("!.").lower()
        yes = self.registry.words.get("yes")
        if word not in ("1", "2") and (yes is None or self._word(word) is not self.registry.commands[yes]):
            return None
        engine = getattr(self.services, "engine", None)
        if engine is None:
            return None
        with engine.begin() as conn:
            question = pending.peek(conn, phone)
            if question is None or question.get("op") != CHOOSE:
                return None
            pending.take(conn, phone)
        options = question["options"]
        choice = options[1] if word == "2" and len(options) > 1 else options[0]
        return replace(self.interpret(choice), confidence=1.0, reason=f"confirmed: {choice}", runner_up=None)

    def _leads(self, cmd: Command, text: str) -> bool:
        """Whether `cmd` was named first ("ok ack it") or by a whole-message phrase ("on it")."""
        words = tokens(text)
        if self._intent(words) is cmd:
            return True
        first = next((w for w in words if w not in FILLER and w not in SOFT and w not in OPENERS), "")
        return self._word(first) is cmd

    def unknown(self, text: str) -> str:
        if _REACTION.match(text):
            return "Operator cannot read reactions; text YES, NO or HELP."
        words = tokens(text)
        if text.strip() and not any(c.isalnum() for c in text):
            # An emoji or a picture: a thumbs-up must not read as an answer, and must not be ignored.
            return "Operator reads words, not emoji or symbols: text YES or NO to answer, HELP for commands."
        if not words:
            return "Empty message. Text HELP for the list of commands."
        meaningful = [w for w in words if w not in FILLER]
        word = (meaningful or words)[0][:20]
        names = [c.name for c in self.registry.visible()]
        candidates = sorted(set(names) | {w for w in self.registry.words if len(w) > 2})
        close = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
        hint = f" Did you mean '{self.registry.words[close[0]]}'?" if close else ""
        return f"Unknown command '{word}'.{hint} Text HELP for the list."
