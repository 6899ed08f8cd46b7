"""Regular expressions from the configuration, matched in time linear in the text (RE2).

Python's `re` backtracks: a pattern like `([a-z0-9]+-?)+\\.prod\\.internal` takes minutes on a
31-character label. RE2 has no backtracking, so it refuses what needs it (backreferences,
lookaround) and every match it does make is linear in the text's length.
"""

from __future__ import annotations

from typing import Any, Protocol

import re2

# Enough for any pattern a person writes; a bigger automaton is refused rather than built.
MAX_MEMORY = 8 << 20


class Pattern(Protocol):
    def fullmatch(self, text: str) -> Any: ...

    def search(self, text: str) -> Any: ...


class PatternError(ValueError):
    """A pattern RE2 cannot match in linear time (or at all); the message says why."""


def _options() -> re2.Options:
    options = re2.Options()
    options.log_errors = False  # the caller reports it, in one line
    options.never_capture = True
    options.max_mem = MAX_MEMORY
    return options


def linear(pattern: str) -> Pattern:
    """`pattern` compiled by RE2; PatternError (with RE2's reason) for one it refuses."""
    try:
        compiled: Pattern = re2.compile(pattern, _options())
    except re2.error as exc:
        reason = exc.args[0] if exc.args else "refused"
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise PatternError(f"{reason} (no backreferences or lookaround: matching must stay linear)") from None
    return compiled
