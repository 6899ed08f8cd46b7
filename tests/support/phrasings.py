"""The phrasing table (tests/payloads/phrasings.tsv): text -> canonical command, tune or held out."""

from __future__ import annotations

from dataclasses import dataclass

from conversation import resolver
from tests.support.paths import PAYLOADS

TABLE = PAYLOADS / "phrasings.tsv"


@dataclass(frozen=True)
class Phrasing:
    split: str  # "tune": asserted by the tests; "held": scored by bench/phrasings.py only
    text: str
    canonical: str


def _unescape(text: str) -> str:
    return text.replace("\\n", "\n").replace("\\t", "\t").replace("\\\\", "\\")


def phrasings(split: str) -> list[Phrasing]:
    """The rows of one split, with SINCE_MIDNIGHT replaced by the range it means right now."""
    rows = []
    for line in TABLE.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#") or line.startswith("split\t"):
            continue
        kind, text, canonical = line.split("\t")
        if kind == split:
            midnight = resolver.duration_text(resolver.since_midnight())
            rows.append(Phrasing(kind, _unescape(text), canonical.replace("SINCE_MIDNIGHT", midnight)))
    return rows
