"""A small client for Alertmanager's API v2: create, expire and read silences; list alerts.

Credentials, when Alertmanager sits behind a proxy, go in ALERTMANAGER_URL itself
(https://user:password@alertmanager:9093); requests sends them as basic auth.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import requests

from config import Settings
from incidents.sources import TEAM_LABEL
from monitors.base_monitor import BaseMonitor, MonitorError
from monitors.http import HttpClient, auth_refused

logger = logging.getLogger(__name__)


class AlertmanagerError(Exception):
    """Alertmanager refused or could not be reached; the message is fit for an SMS."""


def _stamp(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def matchers(labels: dict[str, str]) -> list[dict[str, Any]]:
    """Exact, equal matchers for every label (sorted, so the same labels make the same silence)."""
    return [
        {"name": k, "value": v, "isRegex": False, "isEqual": True}
        for k, v in sorted(labels.items())
        if v and k != TEAM_LABEL
    ]


class Alertmanager:
    def __init__(self, url: str, timeout: float = 5.0):
        self.url = url.rstrip("/")
        self.timeout = timeout

    def _call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        try:
            response = requests.request(method, self.url + path, timeout=self.timeout, **kwargs)
        except requests.RequestException as exc:
            logger.warning("alertmanager %s %s failed: %s", method, path, exc.__class__.__name__)
            raise AlertmanagerError(f"Alertmanager did not answer ({exc.__class__.__name__})") from None
        if response.status_code >= 400:
            detail = response.text.strip().strip('"')[:80]
            logger.warning("alertmanager %s %s: HTTP %s %s", method, path, response.status_code, detail)
            raise AlertmanagerError(f"Alertmanager said HTTP {response.status_code}: {detail}")
        return response

    def create_silence(
        self, labels: dict[str, str], starts: float, ends: float, created_by: str, comment: str
    ) -> str:
        """Create a silence matching `labels` exactly; returns its id."""
        found = matchers(labels)
        if not found:
            # An empty matcher list would be refused, and a broad one would hide everything.
            raise AlertmanagerError("the alert has no labels to match")
        body = {
            "matchers": found,
            "startsAt": _stamp(starts),
            "endsAt": _stamp(ends),
            "createdBy": created_by,
            "comment": comment,
        }
        response = self._call("POST", "/api/v2/silences", json=body)
        try:
            return str(response.json()["silenceID"])
        except (ValueError, KeyError, TypeError):
            raise AlertmanagerError("Alertmanager answered without a silence id") from None

    def expire_silence(self, silence_id: str) -> bool:
        """Expire a silence; False when Alertmanager no longer knows it."""
        try:
            self._call("DELETE", f"/api/v2/silence/{quote(silence_id, safe='')}")
        except AlertmanagerError as exc:
            # Alertmanager 0.25 answers 500 "silence not found" (404 in other versions) and
            # refuses to expire an expired one: both mean the silence is already gone.
            if "HTTP 404" in str(exc) or "not found" in str(exc) or "already expired" in str(exc):
                return False
            raise
        return True

    def silence(self, silence_id: str) -> dict[str, Any]:
        """One silence as Alertmanager reports it (status.state: active, pending, expired)."""
        return self._call("GET", f"/api/v2/silence/{quote(silence_id, safe='')}").json()

    def silences(self) -> list[dict[str, Any]]:
        return self._call("GET", "/api/v2/silences").json()

    def alerts(self, labels: dict[str, str] | None = None) -> list[dict[str, Any]]:
        """Alerts Alertmanager holds (silenced and inhibited included), optionally filtered by labels."""
        params = [("silenced", "true"), ("inhibited", "true"), ("active", "true")]
        params += [("filter", f'{k}="{_quote(v)}"') for k, v in sorted((labels or {}).items())]
        return self._call("GET", "/api/v2/alerts", params=params).json()


class AlertmanagerCheck(BaseMonitor):
    """`flask check`'s Alertmanager line: ALERTMANAGER_URL answers its status API."""

    name = "am"

    def __init__(self, settings: Settings):
        super().__init__(settings.monitor_timeout)
        parts = urlsplit(settings.alertmanager_url)
        # The credentials go in the session, so no error message can show them.
        bare = urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
        self.http = HttpClient(bare, settings.monitor_timeout)
        if parts.username:
            self.http.session.auth = (parts.username, parts.password or "")

    def _check(self) -> str:
        response = self.http.request("GET", "/api/v2/status")
        if response.status_code in (401, 403):
            raise auth_refused(response.status_code)
        body = self.http.json_or_none(response) if response.status_code == 200 else None
        if not isinstance(body, dict) or "cluster" not in body:
            raise MonitorError(f"HTTP {response.status_code}, not Alertmanager's API at {self.http.base_url}")
        version = (body.get("versionInfo") or {}).get("version", "?")
        cluster = body.get("cluster") or {}
        peers = len(cluster.get("peers") or [])
        return f"ok {version}, cluster {cluster.get('status', '?')}" + (
            f" ({peers} peers)" if peers > 1 else ""
        )

    def close(self) -> None:
        self.http.close()
