"""Alert ids and durations in the words of an SMS: "#12", "12 and 13", "30m", "for an hour", "1h30".

One place for the alert commands (and anything else taking an id or a length of time), so "snooze
#12 for half an hour", "mute 12 90 min" and "silence 12 2hrs" mean the same everywhere. Words
come in already lower-cased with surrounding punctuation stripped (conversation.vocabulary.tokens).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from core.timeutil import parse_duration

# Alert ids are short; a longer number is a typo or an attack, never a row to look up.
MAX_ID_DIGITS = 12
ALL_WORDS = frozenset(("all", "everything", "every", "each", "everyone"))

_UNITS = {
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), 1),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes", "mn"), 60),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), 3600),
    **dict.fromkeys(("d", "day", "days"), 86400),
    **dict.fromkeys(("w", "wk", "wks", "week", "weeks"), 604800),
}
# "snooze 12 hour" reads as one hour; a bare "h" or "m" does not stand alone.
_BARE_UNITS = frozenset(("second", "minute", "hour", "day", "week", "sec", "min", "hr"))
_NUMBER_WORDS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "fifteen": 15, "twenty": 20,
    "thirty": 30, "forty": 40, "forty-five": 45, "fortyfive": 45, "fifty": 50, "sixty": 60,
    "ninety": 90,
}  # fmt: skip
# "a couple of hours", "a few minutes", "half an hour", "a quarter of an hour".
_FRACTIONS = {"couple": 2.0, "few": 3.0, "half": 0.5, "quarter": 0.25}
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_ID = re.compile(r"#?(\d+)")
# Digit runs are always separated by letters, so a failed match cannot backtrack for long.
_COMPACT = re.compile(r"\d+(?:\.\d+)?(?:[a-z]+\d+(?:\.\d+)?)*[a-z]*")
_PIECE = re.compile(r"(\d+(?:\.\d+)?)([a-z]*)")
# What looks like a number someone meant: refused when it is not a usable id or duration.
_NUMERIC = re.compile(r"[#+-]?\d.*")
_SMALLER = {3600: 60, 86400: 3600, 60: 1, 604800: 86400}


@dataclass
class Target:
    """What an alert command acts on: ids (or none: the last alert texted), all, and a duration."""

    ids: list[int] = field(default_factory=list)
    all: bool = False
    seconds: float = 0.0
    # A number that was typed but cannot be used ("-5m", a 20-digit id), with why.
    problem: str = ""


def parse_target(args: list[str], wants_duration: bool = False) -> Target:
    """'12', '#12 13', 'all', '12 30m', '12 for 2 hours', 'half an hour' -> ids, all, duration."""
    target, i = Target(), 0
    while i < len(args):
        word = args[i]
        taken = duration_at(args, i)
        if taken is not None:
            seconds, i = taken
            if seconds <= 0:
                target.problem = (
                    target.problem or f"'{_clip(word)}' is no length of time; use e.g. 30m or 2h."
                )
            target.seconds += seconds
            continue
        if (word.startswith("-") or word == "minus") and duration_at(
            args, i + (word == "minus"), signed=True
        ):
            target.problem = target.problem or "A duration cannot be negative; use e.g. 30m or 2h."
        elif match := _ID.fullmatch(word):
            digits = match.group(1).lstrip("0") or "0"
            if len(digits) > MAX_ID_DIGITS:
                target.problem = target.problem or f"No alert #{_clip(digits)}. Text ALERTS for open ones."
            else:
                target.ids.append(int(digits))
        elif word in ALL_WORDS:
            target.all = True
        elif _NUMERIC.fullmatch(word) and not target.problem:
            target.problem = f"'{_clip(word)}' is not an alert id or a duration (e.g. 12, 30m, 2h)."
        i += 1
    if wants_duration and not target.seconds and len(target.ids) >= 2:
        target.seconds = target.ids.pop() * 60.0  # "snooze 12 30": minutes
    return target


def duration_at(words: list[str], i: int, signed: bool = False) -> tuple[float, int] | None:
    """(seconds, index after it) for a duration starting at words[i], or None."""
    if i >= len(words):
        return None
    word = words[i][1:] if signed and words[i][:1] in "-+" else words[i]
    compact = _compact(word)
    if compact is not None:
        return compact, i + 1
    amount, j = _amount(words, i)
    unit = _UNITS.get(words[j]) if j < len(words) else None
    if unit is None or (amount is None and words[j] not in _BARE_UNITS and words[j] + "s" not in _UNITS):
        return None
    seconds = (1.0 if amount is None else amount) * unit
    j += 1
    if words[j : j + 3] == ["and", "a", "half"]:
        seconds, j = seconds + unit / 2, j + 3
    return seconds, j


def _amount(words: list[str], i: int) -> tuple[float | None, int]:
    """The quantity before a unit: '2', 'two', 'an', 'half an', 'a couple of', 'two and a half'."""
    amount, j = None, i
    if words[j] in ("a", "an"):
        amount, j = 1.0, j + 1
    if j < len(words) and words[j] in _FRACTIONS:
        amount, j = (amount or 1.0) * _FRACTIONS[words[j]], j + 1
        while j < len(words) and words[j] in ("of", "a", "an"):
            j += 1
    elif j < len(words) and (_NUMBER.fullmatch(words[j]) or words[j] in _NUMBER_WORDS):
        amount = float(words[j]) if _NUMBER.fullmatch(words[j]) else float(_NUMBER_WORDS[words[j]])
        j += 1
        if words[j : j + 3] == ["and", "a", "half"]:
            amount, j = amount + 0.5, j + 3
    return amount, j


def _compact(word: str) -> float | None:
    """'30m', '2hrs', '1h30m', '1h30', '1.5h', '90min' in seconds; None for anything else."""
    if len(word) > 40 or not _COMPACT.fullmatch(word):
        return None
    pieces = _PIECE.findall(word)
    if not pieces[0][1]:
        return None  # a plain number is an id, not a duration
    seconds, last = 0.0, 0
    for number, unit in pieces:
        if unit and unit not in _UNITS:
            return None
        # "1h30": the bare number after a unit counts in the next smaller one.
        step = _UNITS[unit] if unit else _SMALLER.get(last)
        if step is None:
            return None
        seconds += parse_duration(number) * step
        last = step
    return seconds


def _clip(word: str) -> str:
    return word if len(word) <= 20 else word[:17] + "..."
