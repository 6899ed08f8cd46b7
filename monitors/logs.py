"""Log search shared by Loki and local files, and the local-file monitor (LOG_FILES globs).

`logs payment error 30m` -> terms ["payment", "error"], range 30 minutes. Replies give the match
count and the newest line or two, cut to the SMS budget.
"""

from __future__ import annotations

import glob
import logging
import os
import re
import shlex
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from config import Settings
from core.timeutil import humanize
from monitors.base_monitor import BaseMonitor, MonitorError
from monitors.http import clip

logger = logging.getLogger(__name__)

DEFAULT_RANGE = 3600.0
MAX_RANGE = 7 * 86400.0
MAX_TERMS = 6
# Only the end of each file is read: a log search must answer in seconds, not scan gigabytes.
TAIL_BYTES = 4 * 1024 * 1024
UNITS = {"s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1, "m": 60, "min": 60, "mins": 60,
         "minute": 60, "minutes": 60, "h": 3600, "hr": 3600, "hrs": 3600, "hour": 3600, "hours": 3600,
         "d": 86400, "day": 86400, "days": 86400, "w": 604800, "week": 604800, "weeks": 604800}  # fmt: skip
_DURATION = re.compile(r"^(\d{1,4})([a-z]+)$")
_GLUE = {"last", "past", "in", "since", "for", "within", "the", "ago", "over", "from", "of", "logs", "log"}
_STAMP = re.compile(r"^\[?(\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?)")


@dataclass(frozen=True)
class Matches:
    count: int
    # newest first: (unix time or None, line)
    newest: Sequence[tuple[float | None, str]]
    saturated: bool = False


def parse_search(text: str) -> tuple[list[str], float]:
    """(terms, seconds) from "payment error 1h", "timeout in the last 30 minutes", '"card declined" 1d'."""
    try:
        words = shlex.split(text)
    except ValueError:
        words = text.split()
    terms, i = [], 0
    seconds: int | None = None
    while i < len(words):
        word, lower = words[i], words[i].lower()
        match = _DURATION.match(lower)
        nxt = words[i + 1].lower() if i + 1 < len(words) else ""
        if match and match.group(2) in UNITS:
            seconds = int(match.group(1)) * UNITS[match.group(2)]
        elif lower.isdigit() and nxt in UNITS and len(nxt) > 1:
            seconds, i = int(lower) * UNITS[nxt], i + 1
        elif lower in ("hour", "day", "week", "minute") and _after_glue(words, i):
            seconds = UNITS[lower]
        elif lower == "today":
            seconds = 86400
        elif lower not in _GLUE or " " in word:
            terms.append(word)
        i += 1
    span = min(max(seconds or DEFAULT_RANGE, 60.0), MAX_RANGE)
    return terms[:MAX_TERMS], float(span)


def _after_glue(words: list[str], i: int) -> bool:
    return i > 0 and words[i - 1].lower() in ("last", "past", "an", "one", "the")


def format_matches(source: str, terms: list[str], seconds: float, found: Matches, budget: int) -> str:
    """'logs: 12 matches 'x y' in 1h, newest 3m ago: <line> / <line>' within `budget` characters."""
    what = " ".join(terms)
    count = f"{found.count}{'+' if found.saturated else ''}"
    noun = "match" if found.count == 1 else "matches"
    head = f"{source}: {count} {noun} '{clip(what, 30)}' in {humanize(seconds)}"
    if not found.newest:
        return head
    when = found.newest[0][0]
    head += f", newest {humanize(time.time() - when)} ago: " if when else ", newest: "
    # The age is in the head already, so a leading timestamp only costs room.
    lines = [" ".join(_STAMP.sub("", line, count=1).split()) for _, line in found.newest[:2]]
    # Room for " (20s old)" when the answer comes from the cache; "|" would cost two septets.
    room = max(40, budget - len(head) - len(" (59s old)") - 3 * (len(lines) - 1))
    if len(lines) > 1 and len(lines[0]) + len(lines[1]) > room:
        lines = lines[:1] if len(lines[0]) >= room * 0.6 else lines
    each = room // len(lines)
    return head + " / ".join(clip(line, each) for line in lines)


def budget_of(settings: Settings) -> int:
    return 160 if settings.sms_max_segments == 1 else 153 * settings.sms_max_segments


class LogFilesMonitor(BaseMonitor):
    name = "logs"
    description = "local log files (LOG_FILES)"

    def __init__(self, patterns: str, timeout: float = 4.0, budget: int = 160):
        super().__init__(timeout)
        self.patterns = [p.strip() for p in patterns.split(",") if p.strip()]
        self.identity = ",".join(self.patterns)
        self.budget = budget

    @classmethod
    def from_settings(cls, settings: Settings) -> LogFilesMonitor:
        return cls(settings.log_files, settings.monitor_timeout, budget_of(settings))

    def files(self) -> list[str]:
        found = {path for p in self.patterns for path in glob.glob(p, recursive=True) if os.path.isfile(path)}
        return sorted(found, key=_mtime, reverse=True)

    def _check(self) -> str:
        files = self.files()
        if not files:
            raise MonitorError(f"no files match {clip(','.join(self.patterns), 40)}", permanent=True)
        unreadable = [f for f in files if not os.access(f, os.R_OK)]
        if unreadable:
            raise MonitorError(f"cannot read {os.path.basename(unreadable[0])}", permanent=True)
        return f"ok {len(files)} file{'s' if len(files) != 1 else ''}, newest write {humanize(time.time() - _mtime(files[0]))} ago"

    def _query(self, what: str, args: list[str]) -> str:
        seconds, terms = float(args[0]), args[1:]
        return format_matches("logs", terms, seconds, self.search(terms, seconds), self.budget)

    def search(self, terms: list[str], seconds: float) -> Matches:
        """Lines containing every term (any case) in files written within the range, newest first."""
        since = time.time() - seconds
        needles = [t.lower() for t in terms]
        count = 0
        newest: list[tuple[float, str]] = []  # a line without a timestamp takes its file's mtime
        for path in self.files():
            mtime = _mtime(path)
            if mtime < since:
                continue
            hits = [(ts, line) for ts, line in _tail(path) if all(n in line.lower() for n in needles)]
            hits = [(ts, line) for ts, line in hits if ts is None or ts >= since]
            count += len(hits)
            for ts, line in reversed(hits):
                if len(newest) < 2:
                    newest.append((ts or mtime, line))
        newest.sort(key=lambda item: item[0] or 0, reverse=True)
        return Matches(count, newest)


def _mtime(path: str) -> float:
    try:
        return os.path.getmtime(path)
    except OSError:
        return 0.0


def _tail(path: str) -> list[tuple[float | None, str]]:
    """(timestamp parsed from the line start or None, line) for the file's last TAIL_BYTES."""
    try:
        with open(path, "rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - TAIL_BYTES))
            data = handle.read().decode("utf-8", errors="replace")
    except OSError as exc:
        raise MonitorError(f"cannot read {os.path.basename(path)}: {exc.strerror}") from None
    lines = data.splitlines()
    if size > TAIL_BYTES and lines:
        lines = lines[1:]  # the first one is probably cut
    return [(_stamp(line), line) for line in lines if line.strip()]


def _stamp(line: str) -> float | None:
    match = _STAMP.match(line)
    if not match:
        return None
    raw = match.group(1).replace(" ", "T").replace("Z", "+00:00")
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        return None
    return parsed.timestamp()
