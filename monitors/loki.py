"""Grafana Loki: `|=` line filters built from the search words, over /loki/api/v1/query_range."""

from __future__ import annotations

import logging
import time
from typing import Any

from config import Settings
from monitors.base_monitor import BaseMonitor, MonitorError
from monitors.http import HttpClient, auth_refused, clip
from monitors.logs import Matches, budget_of, format_matches

logger = logging.getLogger(__name__)

# Lines fetched per search; more than this is reported as "500+".
LIMIT = 500


def logql(selector: str, terms: list[str]) -> str:
    """'{job=~".+"} |= "payment" |= "say \\"hi\\""': every term a case-sensitive line filter."""
    filters = "".join(f' |= "{_escape(term)}"' for term in terms)
    return selector + filters


def _escape(term: str) -> str:
    return term.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")


class LokiMonitor(BaseMonitor):
    name = "loki"
    description = "Grafana Loki log search"

    def __init__(self, url: str, selector: str = '{job=~".+"}', timeout: float = 4.0, budget: int = 160):
        super().__init__(timeout)
        self.identity = url
        self.selector = selector
        self.budget = budget
        self.http = HttpClient(url, timeout)

    @classmethod
    def from_settings(cls, settings: Settings) -> LokiMonitor:
        return cls(settings.loki_url, settings.loki_selector, settings.monitor_timeout, budget_of(settings))

    def _check(self) -> str:
        response = self.http.request("GET", "/ready")
        if response.status_code in (401, 403):
            raise auth_refused(response.status_code)
        if response.status_code != 200:
            raise MonitorError(f"not ready (HTTP {response.status_code}): {clip(response.text, 50)}")
        return "ok"

    def _query(self, what: str, args: list[str]) -> str:
        seconds, terms = float(args[0]), args[1:]
        return format_matches("loki", terms, seconds, self.search(terms, seconds), self.budget)

    def search(self, terms: list[str], seconds: float) -> Matches:
        end = time.time_ns()
        params = {
            "query": logql(self.selector, terms),
            "start": str(end - int(seconds * 1e9)),
            "end": str(end),
            "limit": str(LIMIT),
            "direction": "backward",
        }
        response = self.http.request("GET", "/loki/api/v1/query_range", params=params)
        if response.status_code in (401, 403):
            raise auth_refused(response.status_code)
        if response.status_code != 200:
            # Loki answers errors as plain text ("parse error at line 1, col 5: ...").
            text = clip(response.text or "", 80)
            permanent = response.status_code == 400
            prefix = "Loki refused the query" if permanent else f"Loki HTTP {response.status_code}"
            raise MonitorError(f"{prefix}: {text}" if text else prefix, permanent)
        data = self.http.json(response).get("data") or {}
        if data.get("resultType") != "streams":
            raise MonitorError(f"unexpected Loki result type {data.get('resultType')!r}")
        return _matches(data.get("result") or [])

    def close(self) -> None:
        self.http.close()


def _matches(streams: list[dict[str, Any]]) -> Matches:
    entries = [(int(ts), line) for stream in streams for ts, line in stream.get("values", [])]
    entries.sort(key=lambda e: e[0], reverse=True)
    newest = [(ts / 1e9, line) for ts, line in entries[:2]]
    return Matches(len(entries), newest, saturated=len(entries) >= LIMIT)
