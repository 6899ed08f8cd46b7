"""SMS text rules: GSM-7 safe characters, segment counting, and parts that fit a budget.

Every text Operator sends (replies and pages alike) passes through here. A single character
outside GSM-7 switches the whole message to UCS-2, which cuts a segment from 160 to 70
characters, so typography is flattened to ASCII before counting.
"""

from __future__ import annotations

import math
import re
import unicodedata

GSM7_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# Each of these costs two septets (escape + character).
GSM7_EXTENSION = set("^{}\\[~]|€\f")
TWILIO_MAX_CHARS = 1600

_REPLACEMENTS = {
    "‘": "'", "’": "'", "‚": "'", "‛": "'", "′": "'", "`": "'", "´": "'",
    "“": '"', "”": '"', "„": '"', "‟": '"', "″": '"', "«": '"', "»": '"',
    "–": "-", "—": "-", "―": "-", "‒": "-", "−": "-", "‐": "-", "‑": "-",
    "…": "...", "•": "*", "·": "*", "×": "x", "÷": "/", "≥": ">=", "≤": "<=",
    "→": "->", "←": "<-", "⇒": "=>", "✓": "ok", "✔": "ok", "✗": "x", "✘": "x",
    "°": " deg", "µ": "u", "\t": " ",
}  # fmt: skip
_SPACES = re.compile(r"[\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]")
_INVISIBLE = re.compile(r"[\u200b-\u200d\u2060\ufeff\u00ad]")
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]")
_GSM7 = frozenset(GSM7_BASIC | GSM7_EXTENSION)
_EXTENSION = tuple(GSM7_EXTENSION)


def _is_emoji(char: str) -> bool:
    return unicodedata.category(char) == "So" or 0x1F000 <= ord(char) <= 0x1FAFF


def _flatten(char: str, emoji: bool) -> str:
    """What one character becomes in GSM-7 text ('' when it is dropped)."""
    if char == "\r":
        return "\n"
    if char == "\t" or _SPACES.match(char) or unicodedata.category(char) in ("Zl", "Zp"):
        return " "  # Operator's own line breaks are "\n"; a separator from elsewhere is a space
    if _INVISIBLE.match(char) or _CONTROL.match(char):
        return ""
    if char in _GSM7:
        return char
    if char in _REPLACEMENTS:
        return _REPLACEMENTS[char]
    if unicodedata.category(char) == "Nd":
        # "ack ١٢" from an Arabic keyboard is alert 12, not "ack ??" (the last alert).
        return str(unicodedata.decimal(char))
    if _is_emoji(char) or unicodedata.category(char) in ("Mn", "Sk", "Cf"):
        return char if emoji and _is_emoji(char) else ""
    stripped = "".join(c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c))
    return stripped if stripped and all(c in GSM7_BASIC for c in stripped) else "?"


class _Table(dict):
    """A str.translate table filled on first sight of each character (every reply is flattened)."""

    LIMIT = 8192  # hostile bodies may carry any of a million code points; don't keep them all

    def __init__(self, emoji: bool):
        super().__init__()
        self.emoji = emoji

    def __missing__(self, code: int) -> str:
        out = _flatten(chr(code), self.emoji)
        if len(self) < self.LIMIT:
            self[code] = out
        return out


_TABLES = {False: _Table(False), True: _Table(True)}


# Characters that break, hide or reorder a line: C0 and C1 controls with DEL, line and paragraph
# separators, and format characters (bidi overrides and isolates, zero-width ones, the BOM).
_BREAKING = frozenset(("Cc", "Cf", "Zl", "Zp"))
_RUNS = re.compile(r" {2,}")


class _OneLine(dict):
    """A str.translate table: each breaking character to a space, any other to itself."""

    LIMIT = 8192

    def __missing__(self, code: int) -> int:
        out = 0x20 if unicodedata.category(chr(code)) in _BREAKING else code
        if len(self) < self.LIMIT:
            self[code] = out
        return out


_ONE_LINE = _OneLine()


def one_line(text: str) -> str:
    """`text` from outside as one plain line: line breaks and control, separator and format
    characters each become a space (runs of them one), so nobody else's text can start a line
    of its own in a page ("...\nRESOLVED #1 all clear") or reorder what a phone shows."""
    if text.isprintable():  # no Cc, Cf, Zl, Zp (nor any space but ' '): the common case, in C
        return text
    flat = text.translate(_ONE_LINE)
    return _RUNS.sub(" ", flat) if flat != text else flat


def normalize(text: str, emoji: bool = False) -> str:
    """Flatten `text` to GSM-7 (keeping emoji only when allowed); unknown characters become '?'."""
    # Character by character (tabs become spaces, so words never run together), but CRLF is one.
    return text.replace("\r\n", "\n").translate(_TABLES[bool(emoji)])


def is_gsm7(text: str) -> bool:
    return _GSM7.issuperset(text)


def _measure(text: str) -> tuple[int, bool]:
    """(length units, is GSM-7) of `text`."""
    if _GSM7.issuperset(text):
        return len(text) + sum(map(text.count, _EXTENSION)), True
    return len(text.encode("utf-16-le")) // 2, False


def length_units(text: str) -> int:
    """Septets for GSM-7 text, UTF-16 code units for UCS-2 text."""
    return _measure(text)[0]


def segments(text: str) -> int:
    """How many SMS segments Twilio bills for `text` (0 for empty)."""
    units, gsm = _measure(text)
    single, multi = (160, 153) if gsm else (70, 67)
    if units == 0:
        return 0
    return 1 if units <= single else math.ceil(units / multi)


def capacity(text: str, max_segments: int) -> int:
    """Units that fit in `max_segments` segments for text of this encoding."""
    single, multi = (160, 153) if is_gsm7(text) else (70, 67)
    return single if max_segments == 1 else multi * max_segments


# A reply may mark where a MORE page must start ("cpu: 91% a, 55% b +3 more" + the full list).
# A control character: normalize drops it, so it never reaches a phone.
PAGE_BREAK = "\x1e"
# Around a hint (what to set or do): a reply split into parts keeps it on the first one.
HINT = "\x1f"


def hint(text: str) -> str:
    """Mark `text` ("(Set LOKI_URL to search the logs.)") to stay on the first part of a split reply."""
    return f"{HINT}{text}{HINT}"


def split(text: str, max_segments: int = 1, emoji: bool = False) -> list[str]:
    """Normalize and split `text` into parts that each fit `max_segments` segments.

    Every part but the last ends "... (1/3) Reply MORE"; the last ends "(3/3)". A PAGE_BREAK in
    `text` always starts a new part. Hints (`hint`) stay where they are in a reply that fits;
    in one that does not, they end the first part: what to do is what a reader needs first.
    """
    pieces = text.split(HINT)
    pages = _pages("".join(pieces), emoji)
    whole = "\n".join(pages)
    budget = capacity(whole, max_segments)
    if len(pages) <= 1 and length_units(whole) <= budget:
        return [whole]
    note = _note(pieces, budget, emoji)
    if note:
        pages = _pages("".join(pieces[::2]), emoji)
    # Reserve room for the longest suffix, then cut at a line break or space when one is near.
    count = 2
    while True:
        suffix_len = len(f"... ({count}/{count}) Reply MORE")
        room = budget - suffix_len
        chunks = [
            chunk
            for i, page in enumerate(pages)
            for chunk in _split(page, room, room - length_units(note) - 1 if i == 0 and note else room)
        ]
        if len(chunks) <= count:
            break
        count = len(chunks)
    if note:
        chunks[0] = f"{chunks[0]} {note}".strip()
    total = len(chunks)
    return [
        f"{chunk}... ({i}/{total}) Reply MORE" if i < total else f"{chunk} ({i}/{total})"
        for i, chunk in enumerate(chunks, start=1)
    ]


def _pages(text: str, emoji: bool) -> list[str]:
    """The normalized, non-empty pieces of `text` between PAGE_BREAKs."""
    return [page for raw in text.split(PAGE_BREAK) if (page := normalize(raw, emoji=emoji).strip())]


def _note(pieces: list[str], budget: int, emoji: bool) -> str:
    """The hints of a text split at HINT, as one; '' when there are none or they would fill half a part."""
    note = normalize(" ".join(p.strip() for p in pieces[1::2]), emoji=emoji).strip()
    return note if length_units(note) <= budget // 2 else ""


def _split(text: str, room: int, first: int) -> list[str]:
    """`text` in chunks of at most `room` units (the first at most `first`)."""
    chunks: list[str] = []
    while text:
        limit = room if chunks else first
        if length_units(text) <= limit:
            chunks.append(text)
            break
        cut = limit
        while length_units(text[:cut]) > limit:
            cut -= 1
        window = text[:cut]
        soft = max(window.rfind("\n"), window.rfind(" | "), window.rfind(" "))
        if soft > cut // 2:
            cut = soft
        chunks.append(text[:cut].rstrip())
        text = text[cut:].lstrip(" |\n")
    return chunks


def fit(text: str, max_segments: int = 1, emoji: bool = False) -> str:
    """The first part only, for texts that are never continued (alerts): cut after a whole word.

    A hint (`hint`) is kept whole, after what is cut.
    """
    pieces = text.split(HINT)
    pages = _pages("".join(pieces), emoji)
    if not pages:
        return ""
    budget = capacity(pages[0], max_segments)
    if len(pages) == 1 and length_units(pages[0]) <= budget:
        return pages[0]
    note = _note(pieces, budget, emoji)
    body = "".join(pieces[::2]) if note else text
    first = _pages(body, emoji)[0]
    room = budget - (length_units(note) + 1 if note else 0)
    cut = shorten(first, room) if length_units(first) > room else first + "..."
    return f"{cut} {note}".strip() if note else cut


def shorten(text: str, room: int, mark: str = "...") -> str:
    """`text` in at most `room` units: when it does not fit, cut after its last whole word, plus `mark`.

    Only a word longer than the whole room is cut inside it (it could never be shown whole).
    """
    if length_units(text) <= room:
        return text
    keep = max(0, room - length_units(mark))
    cut = min(keep, len(text))
    while cut and length_units(text[:cut]) > keep:
        cut -= 1
    window = text[:cut]
    start = max(window.rfind(" "), window.rfind("\n")) + 1
    ends = [i for i in (text.find(" ", cut), text.find("\n", cut)) if i >= 0]
    word = text[start : min(ends, default=len(text))]
    # A cut inside a word goes back to the space before it, unless that word alone could never fit.
    if start and not text[cut].isspace() and length_units(word) <= keep:
        window = window[:start]
    return window.rstrip(" ,;:|-\n") + mark


class Part(str):
    """A part already cut to size (a MORE continuation): sent as is, never split again."""
