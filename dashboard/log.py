"""The message log: inbound texts (inbound.audit) and outbound texts (outbox.queue), newest first.

Pages are keyset-paginated over both tables at once: the cursor is the last row shown as
(time, source, id), so page 5000 costs what page 1 costs and a row stored meanwhile never shifts
a page. Filters come from the query string and are checked before any query.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any

from sqlalchemy import Connection
from werkzeug.datastructures import MultiDict

from core.timeutil import clock
from inbound import audit
from outbox import calls, queue
from outbox.queue import Kind
from security import mask, mask_numbers

PAGE = 50
# Sources in the cursor's order: at equal times, outbound rows sort before inbound ones.
INBOUND, OUTBOUND = "i", "o"
_NUMBER = re.compile(r"\+?\d{3,15}")
_WORD = re.compile(r"[a-z_]{1,32}")
_CURSOR = re.compile(r"(\d{1,12}(?:\.\d{1,17})?)-([io])-(\d{1,10})")
# Row ids are 32-bit integers on PostgreSQL: a bound past them is refused there, not compared.
MAX_ID = 2**31 - 1


@dataclass(frozen=True)
class Filters:
    number: str = ""
    command: str = ""
    outcome: str = ""
    direction: str = ""  # "", "in" or "out"
    since: float | None = None
    until: float | None = None
    start: str = ""  # the dates as typed, to show them back
    end: str = ""

    def query(self) -> dict[str, str]:
        """The filters as query-string arguments (for links to the next page and the CSV)."""
        values = {
            "number": self.number,
            "command": self.command,
            "outcome": self.outcome,
            "direction": self.direction,
            "from": self.start,
            "to": self.end,
        }
        return {k: v for k, v in values.items() if v}


def parse(args: MultiDict[str, str], admin: bool) -> tuple[Filters, list[str]]:
    """The filters in `args`, and a plain message for each one that cannot be used.

    Only an admin filters by number: a viewer sees numbers masked, and a filter matching the
    hidden number would tell it, one guess per request.
    """
    problems = []
    number = args.get("number", "").strip().replace(" ", "").replace("-", "")
    if number and not admin:
        problems.append("number: only an admin can filter by number (a viewer sees them masked)")
        number = ""
    elif number and not _NUMBER.fullmatch(number):
        problems.append("number: digits, with an optional leading +")
        number = ""
    command = args.get("command", "").strip().lower()
    if command and not _WORD.fullmatch(command):
        problems.append("command: one word such as status or ack")
        command = ""
    outcome = args.get("outcome", "").strip().lower()
    if outcome and not _WORD.fullmatch(outcome):
        problems.append("outcome: one word such as ok, error or delivered")
        outcome = ""
    direction = args.get("direction", "").strip().lower()
    if direction not in ("", "in", "out"):
        problems.append("direction: in or out")
        direction = ""
    start, since = _date(args.get("from", ""), "from", problems)
    end, last = _date(args.get("to", ""), "to", problems)
    until = None if last is None else last + 86400
    if since is not None and until is not None and since >= until:
        problems.append("from must be on or before to")
    return Filters(number, command, outcome, direction, since, until, start, end), problems


def _date(raw: str, name: str, problems: list[str]) -> tuple[str, float | None]:
    raw = raw.strip()
    if not raw:
        return "", None
    try:
        day = date.fromisoformat(raw[:10]) if len(raw) <= 10 else None
    except ValueError:
        day = None
    if day is None:
        problems.append(f"{name}: a date such as 2026-01-31 (UTC)")
        return "", None
    return day.isoformat(), datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()


def parse_cursor(raw: str) -> tuple[float, str, int] | None:
    found = _CURSOR.fullmatch(raw or "")
    if not found or int(found.group(3)) > MAX_ID:
        return None
    return float(found.group(1)), found.group(2), int(found.group(3))


def cursor_of(row: dict[str, Any]) -> str:
    # repr: the exact float back, so the next page starts right after this row.
    return f"{row['at']!r}-{row['source']}-{row['id']}"


def _before(cursor: tuple[float, str, int] | None, source: str) -> tuple[float, int] | None:
    """The cursor as a (time, id) bound on one table's rows."""
    if cursor is None:
        return None
    at, cursor_source, row_id = cursor
    if source == cursor_source:
        return at, row_id
    # Sorted by (time, source, id) descending: at the cursor's time, the other source's rows
    # are all before it ("o" > "i") or all after it.
    return (at, MAX_ID) if source < cursor_source else (at, 0)


def page(
    conn: Connection, filters: Filters, cursor: tuple[float, str, int] | None, limit: int = PAGE
) -> list[dict[str, Any]]:
    """Up to `limit` rows after `cursor`, newest first, from both directions."""
    rows: list[dict[str, Any]] = []
    if filters.direction in ("", "in"):
        found = audit.newest(
            conn, limit, _before(cursor, INBOUND), phone=filters.number or None,
            command=filters.command or None, outcome=filters.outcome or None,
            since=filters.since, until=filters.until,
        )  # fmt: skip
        rows.extend(_inbound(r) for r in found)
    if filters.direction in ("", "out"):
        found = queue.newest(
            conn, limit, _before(cursor, OUTBOUND), to=filters.number or None,
            kind=filters.command or None, status=filters.outcome or None,
            since=filters.since, until=filters.until,
        )  # fmt: skip
        told = calls.of(conn, [r.id for r in found if r.kind == Kind.CALL])
        rows.extend(_outbound(r, told.get(r.id)) for r in found)
    rows.sort(key=lambda r: (r["at"], r["source"], r["id"]), reverse=True)
    return rows[:limit]


def _inbound(r: Any) -> dict[str, Any]:
    return {
        "source": INBOUND, "id": r.id, "at": r.received_at, "direction": "in", "number": r.phone,
        "body": r.body or "", "command": r.command or "", "canonical": r.canonical or "",
        "confidence": _confidence(r.confidence), "reply": r.reply or "",
        "segments": r.segments, "outcome": r.outcome, "delivery": "", "error": "", "alert_id": None,
        "sent_at": None,
    }  # fmt: skip


def _outbound(r: Any, call: calls.Call | None = None) -> dict[str, Any]:
    # A call's delivery is how it went: answered and the key pressed, or why nobody was reached.
    delivery = call.told if call is not None else r.delivery_status or ""
    return {
        "source": OUTBOUND, "id": r.id, "at": r.created_at, "direction": "out", "number": r.to_number,
        "body": r.body or "", "command": r.kind, "canonical": "", "confidence": "", "reply": "",
        "segments": r.segments,
        "outcome": r.status, "delivery": delivery, "error": r.error_code or "",
        "alert_id": r.alert_id, "sent_at": r.sent_at,
    }  # fmt: skip


def _confidence(value: float | None) -> str:
    """How sure the resolver was, as two decimals ("" when it did not say or said nonsense)."""
    if value is None or not math.isfinite(value):
        return ""
    return f"{min(1.0, max(0.0, value)):.2f}"


def for_viewer(row: dict[str, Any], admin: bool) -> dict[str, Any]:
    """The row as this dashboard user may see it: unless admin, the number masked and every
    phone-shaped run in any text of it (body, reply, delivery, error...) too."""
    if admin:
        return row
    shown = {k: mask_numbers(v) if isinstance(v, str) else v for k, v in row.items()}
    shown["number"] = mask(row["number"])
    return shown


# Times carry their zone ("2026-12-08 03:05:09 CET"): TIMEZONE's.
COLUMNS = ["time", "direction", "number", "command", "canonical", "confidence", "outcome", "delivery", "error_code", "segments",
           "body", "reply", "alert_id", "sent"]  # fmt: skip


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    # A spreadsheet runs a cell that starts like a formula; a phone number keeps its +.
    if text[:1] in ("=", "+", "-", "@", "\t", "\r") and not _NUMBER.fullmatch(text):
        return "'" + text
    return text


def csv_lines(
    rows_of: Any, filters: Filters, admin: bool, zone: tzinfo = UTC, batch: int = 1000
) -> Iterator[str]:
    """The whole filtered log as CSV, read `batch` rows at a time (`rows_of(filters, cursor, batch)`)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    cursor = None
    while True:
        rows = rows_of(filters, cursor, batch)
        for row in rows:
            row = for_viewer(row, admin)
            writer.writerow(
                _cell(v)
                for v in (
                    when(row["at"], zone),
                    row["direction"],
                    row["number"],
                    row["command"],
                    row["canonical"],
                    row["confidence"],
                    row["outcome"],
                    row["delivery"],
                    row["error"],
                    row["segments"],
                    row["body"],
                    row["reply"],
                    row["alert_id"],
                    when(row["sent_at"], zone),
                )  # fmt: skip
            )
        yield out.getvalue()
        out.seek(0)
        out.truncate()
        if len(rows) < batch:
            return
        last = rows[-1]
        cursor = (last["at"], last["source"], last["id"])


def when(at: float | None, zone: tzinfo = UTC) -> str:
    """An epoch time as people read it, in `zone` and naming it ('2026-12-08 03:05:09 CET')."""
    if at is None:
        return ""
    return clock(at, zone, full=True)  # "" for NaN, infinite or beyond year 9999


def month_start(now: float) -> float:
    day = datetime.fromtimestamp(now, UTC)
    return datetime(day.year, day.month, 1, tzinfo=UTC).timestamp()


def hour_edges(now: float, hours: int) -> list[float]:
    top = (int(now) // 3600 + 1) * 3600
    return [float(top - 3600 * (hours - i)) for i in range(hours + 1)]


def day_edges(now: float, days: int, zone: tzinfo = UTC) -> list[float]:
    """Midnights in `zone` (wall-clock days: one may be 23 or 25 hours long)."""
    today = datetime.fromtimestamp(now, zone).replace(hour=0, minute=0, second=0, microsecond=0)
    return [(today + timedelta(days=1 - days + i)).timestamp() for i in range(days + 1)]
