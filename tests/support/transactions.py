"""Where team patterns are matched: a record of each match, inside a write transaction or not."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from unittest import mock

from sqlalchemy import Engine, event

from oncall import teams


@contextmanager
def pattern_matches(engine: Engine) -> Iterator[list[bool]]:
    """Yields a list that gets, for each team pattern matched meanwhile, whether a transaction
    on `engine` was open at that moment."""
    open_transactions: list[bool] = []
    inside: list[bool] = []
    listeners = {
        "begin": lambda conn: open_transactions.append(True),
        "commit": lambda conn: open_transactions.clear(),
        "rollback": lambda conn: open_transactions.clear(),
    }
    for name, listener in listeners.items():
        event.listen(engine, name, listener)
    original = teams.Matcher.matches

    def watched(matcher, labels):
        inside.append(bool(open_transactions))
        return original(matcher, labels)

    try:
        with mock.patch.object(teams.Matcher, "matches", autospec=True, side_effect=watched):
            yield inside
    finally:
        for name, listener in listeners.items():
            event.remove(engine, name, listener)
