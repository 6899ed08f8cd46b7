"""A monitor whose reading a test sets, for rules evaluated outside the rule tests."""

from __future__ import annotations

from monitors import BaseMonitor


class Dial(BaseMonitor):
    """Answers every query with `reading`, like a real backend that changes over time."""

    name = "dial"

    def __init__(self, reading: float | None = 0.0):
        super().__init__(timeout=2)
        self.reading = reading

    def _check(self) -> str:
        return "ok"

    def _value(self, query: str) -> float | None:
        return self.reading
