"""iCal feeds given as URLs: fetched by the leading worker with a timeout and cached in the store.

A feed that cannot be fetched keeps the last copy that could (the schedule does not vanish when
the calendar host is down); a file path is read at start instead (oncall.teams).
"""

from __future__ import annotations

import logging

import requests

from core import db
from oncall import store, teams
from services import Services

logger = logging.getLogger(__name__)

PERIOD = 300.0
TIMEOUT = 10.0
MAX_BYTES = 5_000_000


def fetch(url: str, timeout: float = TIMEOUT) -> str:
    """The feed's text; ValueError when it is no iCalendar, requests' errors when unreachable."""
    response = requests.get(url, timeout=timeout, headers={"Accept": "text/calendar"})
    response.raise_for_status()
    if len(response.content) > MAX_BYTES:
        raise ValueError(f"larger than {MAX_BYTES} bytes")
    text = response.content.decode("utf-8", errors="replace")
    if "BEGIN:VCALENDAR" not in text:
        raise ValueError("not an iCalendar feed (no BEGIN:VCALENDAR)")
    return text


def run(services: Services, now: float | None = None) -> int:
    """Refresh each URL feed; returns how many were fetched."""
    now = db.now() if now is None else now
    fetched = 0
    for team in teams.of(services.settings).values():
        if not team.ical_url:
            continue
        try:
            body = fetch(team.ical_url, min(TIMEOUT, services.settings.monitor_timeout * 2))
        except (requests.RequestException, ValueError) as exc:
            logger.warning("team %s: iCal feed not fetched (%s); keeping the last copy", team.name,
                           exc.__class__.__name__ if isinstance(exc, requests.RequestException) else exc)  # fmt: skip
            continue
        with services.engine.begin() as conn:
            store.store_feed(conn, team.name, body, now)
        fetched += 1
    return fetched
