"""What a sentence asks for, scored: typo correction, logs versus metrics, and canonical commands.

Pure functions over words (no registry, no backends): command_processor decides which command a
sentence names and asks these for the parts that do not depend on the registry. A `Reading` is
the result: the command, its words, how sure the resolver is and why, and its canonical text
(`snooze 12 30m`, `logs payment error 1h`), which `flask parse` prints and the audit stores.
"""

from __future__ import annotations

import re
import shlex
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from rapidfuzz import process
from rapidfuzz.distance import OSA

from conversation.arguments import duration_at
from conversation.vocabulary import FILLER, stems

# Readings at or above this may change state; below it Operator asks which reading was meant.
THRESHOLD = 0.75

# What a word in a log or metric question means: an error of some kind ("any exceptions?").
ERROR_WORDS = {
    "error": "error", "errors": "error", "err": "error", "erroring": "error", "errored": "error",
    "exception": "exception", "exceptions": "exception", "failure": "failure", "failures": "failure",
    "fail": "fail", "fails": "fail", "failed": "failed", "failing": "fail", "timeout": "timeout",
    "timeouts": "timeout", "crash": "crash", "crashes": "crash", "crashed": "crash", "panic": "panic",
    "panics": "panic", "fatal": "fatal", "warning": "warning", "warnings": "warning", "warn": "warn",
    "traceback": "traceback", "tracebacks": "traceback", "stacktrace": "stacktrace",
}  # fmt: skip
# Error words that a metric also answers ("any 500s?"); the others only a log search can.
METRIC_ERROR_WORDS = frozenset(("error", "errors", "err", "exception", "exceptions", "failure", "failures"))
# Words that make an error word a rate, which only the metric answers ("error rate", "5xx/s").
RATE_WORDS = frozenset("rate rates ratio percentage percent pct % per /s persec rps qps throughput".split())
# Verbs that ask for log lines ("find errors with payment", "look for timeouts").
SEARCH_VERBS = frozenset(("find", "search", "grep", "look", "looking", "searching", "finding", "lookup"))
# A time range makes an error question a log search ("any errors in the last hour?").
_RANGE_LEAD = frozenset(("last", "past", "previous", "recent", "within", "over"))
_DAY_WORDS = {"today": 86400.0, "yesterday": 2 * 86400.0, "overnight": 12 * 3600.0, "tonight": 12 * 3600.0}
_GLUE = frozenset(("last", "past", "previous", "in", "since", "for", "within", "the", "ago", "over", "from"))
# Words about time that are never a misspelt command ("last" is not "list").
TIME_WORDS = (
    _GLUE | _RANGE_LEAD | set(_DAY_WORDS) | {"hour", "hours", "minute", "minutes", "midnight", "week"}
)
_QUOTED = re.compile(r'"([^"]+)"')
_PUNCT = "!?.,;:'\"()[]{}<>`~*"
_LOG_NOISE = FILLER | {"thanks", "thx", "thank", "ty", "logs", "log", "lines", "line", "entries", "mentions"}
_LOG_NOISE |= SEARCH_VERBS | {"for", "grep", "search", "any", "anything", "something", "stuff"}
MAX_TERMS = 6


@dataclass
class Reading:
    """One way to read a message: the command and its words, with a confidence and a reason."""

    name: str | None
    args: list[str] = field(default_factory=list)
    rest: str = ""
    leading: bool = True
    confidence: float = 0.0
    reason: str = "no command word"
    canonical: str = "none"
    # A second reading close enough to the first that Operator asks which one was meant.
    runner_up: Reading | None = None


def closest(word: str, vocabulary: Iterable[str], limit: int) -> list[tuple[str, int]]:
    """(candidate, edits) within `limit` edits (a swap of neighbours is one), nearest first."""
    found = process.extract(word, list(vocabulary), scorer=OSA.distance, score_cutoff=limit, limit=None)
    return sorted(((choice, int(score)) for choice, score, _ in found), key=lambda c: (c[1], c[0]))


def similarity(a: str, b: str) -> float:
    """1.0 for the same word, less for each edit relative to its length."""
    return float(OSA.normalized_similarity(a, b))


def error_word(word: str) -> str | None:
    """The plain form of an error word ('exceptions' -> 'exception'), or None."""
    return next((ERROR_WORDS[f] for f in stems(word) if f in ERROR_WORDS), None)


def asks_rate(texts: list[str]) -> bool:
    """'error rate', '5xx per second', 'errors/s': the metric, never a log search."""
    if any(t in RATE_WORDS or t.endswith("/s") for t in texts):
        return True
    return any(texts[i] == "a" and texts[i + 1] in ("second", "minute") for i in range(len(texts) - 1))


def has_range(texts: list[str]) -> bool:
    """'in the last hour', 'today', 'since midnight', 'past 2 days': a time range was given."""
    for i, t in enumerate(texts):
        if t in _DAY_WORDS or t == "since" or (t == "this" and texts[i + 1 : i + 2] == ["morning"]):
            return True
        if t in _RANGE_LEAD and i + 1 < len(texts):
            if duration_at(texts, i + 1) is not None or _bare_unit(texts[i + 1]):
                return True
    return False


def _bare_unit(word: str) -> bool:
    return word in ("hour", "day", "week", "minute", "night", "hr", "min")


def log_signals(texts: list[str], text: str, known: Mapping[str, str]) -> str:
    """Why this reads as a log search ('' when it does not): range, search verb, quotes, subject.

    `known` maps every word a command or keyword claims to its command: those are never the
    subject of a search ("errors on the db" is not a search for "db").
    """
    meaningful = [t for t in texts if t not in FILLER or t in SEARCH_VERBS]
    errors = [t for t in texts if error_word(t)]
    if meaningful[:1] and meaningful[0] in SEARCH_VERBS:
        return f"search verb '{meaningful[0]}'"
    if asks_rate(texts):
        return ""
    if _QUOTED.search(text):
        return "quoted text"
    subject = [t for t in meaningful if _subject(t, known)]
    if not errors:
        return f"'{subject[0]}' with a time range" if subject and has_range(texts) else ""
    if has_range(texts):
        return f"'{errors[0]}' with a time range"
    log_only = [e for e in errors if e not in METRIC_ERROR_WORDS]
    if log_only:
        return f"'{log_only[0]}' is found in logs, not metrics"
    if subject:
        return f"'{subject[0]}' beside '{errors[0]}'"
    return ""


def _subject(word: str, known: Mapping[str, str]) -> bool:
    """A word a search looks for: not filler, an error word, a unit, a number or a command's word."""
    if word in _LOG_NOISE or error_word(word) or word in _GLUE or word in _DAY_WORDS:
        return False
    if any(f in known for f in stems(word)) or not any(c.isalpha() for c in word):
        return False
    return duration_at([word], 0) is None and word not in ("hour", "day", "week", "minute", "midnight")


def log_query(rest: str, now: float | None = None) -> tuple[list[str], float | None]:
    """(terms, seconds or None) of a log search typed as a sentence.

    Quoted phrases stay one term; filler, punctuation and time words go; error words are cut to
    their plain form ("errors" -> "error": a line saying "error" or "errors" matches) and put
    after the subject ("errors with payment" -> payment error). Case is kept: Loki matches as typed.
    """
    try:
        # shlex keeps '"said \\"try later\\""' one phrase; an apostrophe ("what's") defeats it.
        pieces = shlex.split(rest)
    except ValueError:
        pieces = [*_QUOTED.findall(rest), *_QUOTED.sub(" ", rest).split()]
    # A quoted phrase is one word here, never a range or an error word.
    raw = [" ".join(p.split()) if " " in p.strip() else p.strip(_PUNCT) for p in pieces]
    raw = [w for w in raw if w]
    lower = [w.lower() for w in raw]
    seconds: float | None = None
    subject: list[str] = []
    kinds: list[str] = []
    i = 0
    while i < len(raw):
        word = lower[i]
        span = None if " " in word else _range_at(lower, i, now)
        if span is not None:
            seconds, i = span
            continue
        kind = None if " " in word else error_word(word)
        if kind:
            kinds.append(raw[i][: len(kind)] if word.startswith(kind) else kind)
        elif " " in word or (word not in _LOG_NOISE and word not in _GLUE):
            subject.append(raw[i])
        i += 1
    terms = list(dict.fromkeys([*subject, *kinds]))
    return terms[:MAX_TERMS], seconds


def _range_at(words: list[str], i: int, now: float | None) -> tuple[float, int] | None:
    """(seconds, next index) for a time range starting at words[i]."""
    word = words[i]
    if word in _DAY_WORDS:
        return _DAY_WORDS[word], i + 1
    if word == "since" and words[i + 1 : i + 2] == ["midnight"]:
        return since_midnight(now), i + 2
    if word == "this" and words[i + 1 : i + 2] == ["morning"]:
        return since_midnight(now), i + 2
    if word == "last" and words[i + 1 : i + 2] == ["night"]:
        return 12 * 3600.0, i + 2
    if word in _RANGE_LEAD and i + 1 < len(words) and _bare_unit(words[i + 1]):
        unit = {"hour": 3600, "hr": 3600, "day": 86400, "week": 604800, "minute": 60, "min": 60}
        if words[i + 1] in unit:
            return float(unit[words[i + 1]]), i + 2
    taken = duration_at(words, i)
    if taken is not None and taken[0] > 0:
        return taken
    return None


def since_midnight(now: float | None = None) -> float:
    """Seconds since local midnight, in whole minutes (at least one)."""
    local = time.localtime(time.time() if now is None else now)
    return float(max(60, (local.tm_hour * 60 + local.tm_min + 1) * 60))


def duration_text(seconds: float) -> str:
    """A duration in its largest whole unit: 45m, 2h, 1d, 90m, 30s."""
    whole = round(seconds)
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m")):
        if whole >= size and whole % size == 0:
            return f"{whole // size}{unit}"
    return f"{whole}s"
