"""Durations as people type them ("30s", "5m", "2h", "1d") and as replies show them; moments with their zone."""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta, tzinfo

_CENTURY = 100 * 365 * 86400.0
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(
    r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|secs|seconds?|m|min|mins|minutes?|h|hr|hrs|hours?|d|days?|w|weeks?)?\s*$"
)


def parse_duration(text: str, default_unit: str = "s") -> float:
    """Seconds (finite) in "90", "30s", "5m", "2 hours", "1d"; ValueError otherwise."""
    match = _DURATION.match(str(text).lower())
    if not match:
        raise ValueError(f"not a duration: {text!r} (use e.g. 30s, 5m, 2h, 1d)")
    number, unit = match.groups()
    seconds = float(number) * _UNITS[(unit or default_unit)[0]]
    if not math.isfinite(seconds):  # 400 digits are no duration: inf would pass every comparison
        raise ValueError(f"not a duration: {str(text)[:20]!r}... (too large)")
    return seconds


def humanize(seconds: float) -> str:
    """Shortest honest form: 45s, 23m, 2h5m, 3d4h; "?" for no real duration (NaN, inf, centuries)."""
    if not math.isfinite(seconds) or seconds > _CENTURY:
        return "?"
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        hours, minutes = divmod(seconds // 60, 60)
        return f"{hours}h{minutes}m" if minutes else f"{hours}h"
    days, hours = divmod(seconds // 3600, 24)
    return f"{days}d{hours}h" if hours else f"{days}d"


def clock(at: float, zone: tzinfo, now: float | None = None, full: bool = False) -> str:
    """A moment as every text and page writes it, in `zone` and naming it: 'Tue 09:00 CET'.

    On the same day as `now` the time alone ('18:00 UTC'), a week or more away the date too
    ('Tue 15 Dec 09:00 CET'); `full` is the dashboard's '2026-12-08 09:00:05 CET'. "" for no
    real time (NaN, infinite, out of range).
    """
    try:
        local = datetime.fromtimestamp(at, zone)
        today = None if now is None else datetime.fromtimestamp(now, zone).date()
    except (ValueError, OverflowError, OSError):
        return ""
    if full:
        shown = local.strftime("%Y-%m-%d %H:%M:%S")
    elif local.date() == today:
        shown = local.strftime("%H:%M")
    elif now is not None and abs(at - now) >= 6 * 86400:
        shown = local.strftime("%a %d %b %H:%M")
    else:
        shown = local.strftime("%a %H:%M")
    return f"{shown} {zone_name(local)}"


def zone_name(local: datetime) -> str:
    """The zone's abbreviation at that moment (CET, CEST, EST, UTC); 'UTC-03' where it has none of its own."""
    name = local.tzname() or ""
    if name.isalpha():
        return name
    offset = local.utcoffset() or timedelta(0)
    minutes = round(offset.total_seconds() / 60)
    sign, minutes = ("+" if minutes >= 0 else "-"), abs(minutes)
    hours, minutes = divmod(minutes, 60)
    return f"UTC{sign}{hours:02d}" + (f":{minutes:02d}" if minutes else "")
