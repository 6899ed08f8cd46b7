"""New Relic: REST v2 applications for `status`/`apps`, NerdGraph NRQL for named queries (`nr`)."""

from __future__ import annotations

import logging
import re
from typing import Any

from config import ConfigError, Settings
from monitors.base_monitor import BaseMonitor, MonitorError
from monitors.http import HttpClient, auth_refused, clip
from monitors.prometheus import number

logger = logging.getLogger(__name__)

REGIONS = {"us": "https://api.newrelic.com", "eu": "https://api.eu.newrelic.com"}
NRQL_QUERY = (
    "query($accountId: Int!, $nrql: Nrql!) "
    "{ actor { account(id: $accountId) { nrql(query: $nrql) { results } } } }"
)
RAW = "=nrql"
# Worst first: red, then orange, then not reporting, then green.
HEALTH_RANK = {"red": 0, "orange": 1, "yellow": 1, "gray": 2, "grey": 2, "unknown": 2, "green": 3}
MAX_PAGES = 5
TIME_KEYS = ("beginTimeSeconds", "endTimeSeconds")
LOOKS_LIKE_NRQL = re.compile(r"^\s*(select|from)\b", re.IGNORECASE)


def parse_nrql(section: Any) -> dict[str, str]:
    """The file's `nrql:` map of name to NRQL; ConfigError naming a bad entry."""
    if section is None:
        return {}
    if not isinstance(section, dict):
        raise ConfigError("OPERATOR_CONFIG: `nrql` must map names to NRQL strings")
    queries = {}
    for name, query in section.items():
        key = str(name).strip().lower()
        if not key.replace("_", "").replace("-", "").isalnum():
            raise ConfigError(f"OPERATOR_CONFIG: nrql name {name!r} must be one word")
        if not isinstance(query, str) or not LOOKS_LIKE_NRQL.match(query):
            raise ConfigError(f"OPERATOR_CONFIG: nrql.{key} must be an NRQL string starting SELECT or FROM")
        queries[key] = query.strip()
    return queries


class NewRelicMonitor(BaseMonitor):
    name = "nr"
    description = "New Relic APM applications and NRQL queries"

    def __init__(self, api_key: str, account_id: str = "", region: str = "us", api_url: str = "",
                 timeout: float = 4.0, queries: dict[str, str] | None = None):  # fmt: skip
        super().__init__(timeout)
        base = api_url or REGIONS[region]
        self.identity = base
        self.account_id = account_id
        self.rest = HttpClient(base, timeout, {"X-Api-Key": api_key, "Accept": "application/json"})
        self.graphql = HttpClient(base, timeout, {"API-Key": api_key, "Content-Type": "application/json"})
        self.queries = queries or {}

    @classmethod
    def from_settings(cls, settings: Settings) -> NewRelicMonitor:
        account = settings.newrelic_account_id
        if account and not account.isdigit():
            raise ConfigError(f"NEWRELIC_ACCOUNT_ID must be the numeric account id, not {account!r}")
        queries = parse_nrql(settings.file.get("nrql"))
        return cls(settings.newrelic_api_key, account, settings.newrelic_region,
                   settings.newrelic_api_url, settings.monitor_timeout, queries)  # fmt: skip

    def applications(self) -> list[dict[str, Any]]:
        """Every APM application, following REST v2's Link pagination a few pages deep."""
        apps: list[dict[str, Any]] = []
        path = "/v2/applications.json"
        for _ in range(MAX_PAGES):
            response = self.rest.request("GET", path)
            if response.status_code != 200:
                raise _rest_error(response.status_code, self.rest.json_or_none(response))
            body = self.rest.json(response)
            apps.extend(body.get("applications") or [])
            following = response.links.get("next", {}).get("url")
            if not following:
                break
            path = following
        return apps

    def _check(self) -> str:
        apps = self.applications()
        if not apps:
            return "ok 0 apps"
        bad = sorted((a for a in apps if _health(a) in ("red", "orange", "yellow")), key=_rank)
        if not bad:
            return f"ok {len(apps)} apps"
        groups = []
        for color in ("red", "orange", "yellow"):
            names = [a.get("name", "?") for a in bad if _health(a) == color]
            if names:
                groups.append(f"{len(names)} {color} {', '.join(clip(n, 20) for n in names[:2])}")
        return f"{len(apps)} apps: " + "; ".join(groups)

    def apps_summary(self) -> str:
        apps = sorted(self.applications(), key=_rank)
        if not apps:
            return "nr: no APM applications"
        return " | ".join(_app_line(a) for a in apps)

    def _query(self, what: str, args: list[str]) -> str:
        if what == "apps":
            return self.apps_summary()
        if what == RAW:
            return "nrql: " + format_results(self.nrql(" ".join(args)))
        key = what.lower()
        if key not in self.queries:
            known = ", ".join(self.queries) or "none configured (nrql: in the config file)"
            raise MonitorError(f"no NRQL query '{clip(what, 20)}'; known: {known}", permanent=True)
        return f"{key}: " + format_results(self.nrql(self.queries[key]))

    def _value(self, query: str) -> float | None:
        nrql = self.queries.get(query.strip().lower(), query)
        for row in self.nrql(nrql):
            for _, value in _flatten(row):
                if isinstance(value, int | float) and not isinstance(value, bool):
                    return float(value)
        return None

    def nrql(self, query: str) -> list[dict[str, Any]]:
        """NerdGraph NRQL results; GraphQL errors[] (even in a 200) become MonitorError."""
        if not self.account_id:
            raise MonitorError("NEWRELIC_ACCOUNT_ID is not set", permanent=True)
        payload = {"query": NRQL_QUERY, "variables": {"accountId": int(self.account_id), "nrql": query}}
        response = self.graphql.request("POST", "/graphql", json=payload)
        body = self.graphql.json_or_none(response)
        if response.status_code in (401, 403):
            raise auth_refused(response.status_code)
        if isinstance(body, dict) and body.get("errors"):
            message = (body["errors"][0] or {}).get("message", "error")
            raise MonitorError(f"NRQL error: {clip(message, 90)}", permanent=True)
        if response.status_code != 200 or not isinstance(body, dict):
            raise MonitorError(f"NerdGraph HTTP {response.status_code}")
        try:
            results = body["data"]["actor"]["account"]["nrql"]["results"]
        except (KeyError, TypeError):
            raise MonitorError("NerdGraph answered without results") from None
        return results or []

    def close(self) -> None:
        self.rest.close()
        self.graphql.close()


def _rest_error(status: int, body: Any) -> MonitorError:
    title = body.get("error", {}).get("title", "") if isinstance(body, dict) else ""
    if status in (401, 403):
        return MonitorError(f"auth refused (HTTP {status})" + (f": {clip(title, 60)}" if title else ""), True)
    return MonitorError(f"HTTP {status}" + (f": {clip(title, 60)}" if title else ""))


def _health(app: dict[str, Any]) -> str:
    return str(app.get("health_status") or "unknown").lower()


def _rank(app: dict[str, Any]) -> tuple[int, float]:
    summary = app.get("application_summary") or {}
    return HEALTH_RANK.get(_health(app), 2), -float(summary.get("error_rate") or 0)


def _app_line(app: dict[str, Any]) -> str:
    """'checkout RED 850ms err 4.2% apdex 0.62'."""
    health = _health(app)
    label = "ok" if health == "green" else health.upper()
    summary = app.get("application_summary")
    if not summary or not app.get("reporting", True):
        return f"{clip(app.get('name', '?'), 24)} {label} not reporting"
    return (
        f"{clip(app.get('name', '?'), 24)} {label} {number(float(summary.get('response_time', 0)))}ms"
        f" err {number(float(summary.get('error_rate', 0)))}% apdex {summary.get('apdex_score', '?')}"
    )


def _flatten(row: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out = []
    for key, value in row.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.extend(_flatten(value, name + "."))
        else:
            out.append((name, value))
    return out


def _show(value: Any) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return number(float(value))
    return clip(str(value), 30)


def format_results(results: list[dict[str, Any]]) -> str:
    """'count 42' for one row; 'checkout 12, cart 3' for facets; numbers compact."""
    if not results:
        return "no results"
    parts = []
    for row in results[:5]:
        facet = row.get("facet")
        facets = facet if isinstance(facet, list) else [facet]
        # FACET rows repeat the faceted attribute under its own name ("appName": "checkout").
        values = [(k, v) for k, v in _flatten(row) if k != "facet" and k not in TIME_KEYS and v not in facets]
        if facet is None:
            parts.append(" ".join(f"{k} {_show(v)}" for k, v in values[:3]))
        else:
            label = ", ".join(map(str, facet)) if isinstance(facet, list) else str(facet)
            parts.append(f"{clip(label, 24)} " + " ".join(_show(v) for _, v in values[:3]))
    more = f" +{len(results) - 5} more" if len(results) > 5 else ""
    return ", ".join(parts) + more
