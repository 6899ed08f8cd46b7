"""Your own HTTP API: endpoints and the JSON fields to show come from the config file's `api:`.

Only configured endpoints are ever requested; a word typed in an SMS picks one by name and
never becomes part of a URL.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from config import ConfigError, Settings
from monitors.base_monitor import BaseMonitor, MonitorError
from monitors.http import HttpClient, auth_refused, clip
from monitors.prometheus import number

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Endpoint:
    name: str
    path: str
    # label shown -> dotted path into the JSON body ("queue.depth", "items.0.state")
    fields: dict[str, str]


def parse_endpoints(section: Any) -> dict[str, Endpoint]:
    """The file's `api:` map; ConfigError naming a bad entry."""
    if section is None:
        return {}
    if not isinstance(section, dict):
        raise ConfigError("OPERATOR_CONFIG: `api` must map endpoint names to {path, fields}")
    endpoints = {}
    for name, spec in section.items():
        key = str(name).strip().lower()
        if not key.replace("_", "").replace("-", "").isalnum():
            raise ConfigError(f"OPERATOR_CONFIG: api endpoint name {name!r} must be one word")
        if isinstance(spec, str):
            spec = {"path": spec}
        if not isinstance(spec, dict) or not str(spec.get("path", "")).startswith("/"):
            raise ConfigError(f"OPERATOR_CONFIG: api.{key} needs a path starting with /")
        unknown = set(spec) - {"path", "fields"}
        if unknown:
            raise ConfigError(f"OPERATOR_CONFIG: api.{key} has unknown key(s) {', '.join(sorted(unknown))}")
        fields = spec.get("fields") or []
        if isinstance(fields, list) and all(isinstance(f, str) for f in fields):
            fields = {f: f for f in fields}
        if not isinstance(fields, dict) or not all(isinstance(v, str) for v in fields.values()):
            raise ConfigError(
                f"OPERATOR_CONFIG: api.{key}.fields must be a list of paths or a label: path map"
            )
        endpoints[key] = Endpoint(key, spec["path"], {str(k): v for k, v in fields.items()})
    return endpoints


def dig(body: Any, path: str) -> Any:
    """body['a']['b'][0] for 'a.b.0'; KeyError when any step is missing."""
    value = body
    for step in path.split("."):
        if isinstance(value, list) and step.lstrip("-").isdigit() and -len(value) <= int(step) < len(value):
            value = value[int(step)]
        elif isinstance(value, dict) and step in value:
            value = value[step]
        else:
            raise KeyError(path)
    return value


class CustomApiMonitor(BaseMonitor):
    name = "api"
    description = "your HTTP API's configured endpoints"

    def __init__(
        self, url: str, token: str = "", timeout: float = 4.0, endpoints: dict[str, Endpoint] | None = None
    ):
        super().__init__(timeout)
        self.identity = url
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.http = HttpClient(url, timeout, headers)
        self.endpoints = endpoints or {}

    @classmethod
    def from_settings(cls, settings: Settings) -> CustomApiMonitor:
        endpoints = parse_endpoints(settings.file.get("api"))
        return cls(settings.custom_api_url, settings.custom_api_token, settings.monitor_timeout, endpoints)

    def fetch(self, endpoint: Endpoint | None) -> tuple[Any, float]:
        """(JSON body or None, latency in ms) for one endpoint (None: the base URL)."""
        started = time.monotonic()
        response = self.http.request("GET", endpoint.path if endpoint else "/")
        latency = (time.monotonic() - started) * 1000
        if response.status_code in (401, 403):
            raise auth_refused(response.status_code)
        if not 200 <= response.status_code < 300:
            body = self.http.json_or_none(response)
            detail = _error_detail(body)
            raise MonitorError(f"HTTP {response.status_code}" + (f": {detail}" if detail else ""))
        return self.http.json_or_none(response), latency

    def _check(self) -> str:
        first = next(iter(self.endpoints.values()), None)
        _, latency = self.fetch(first)
        return f"ok {latency:.0f}ms"

    def _query(self, what: str, args: list[str]) -> str:
        if not self.endpoints:
            _, latency = self.fetch(None)
            return f"api ok {latency:.0f}ms (no endpoints configured)"
        key = what.lower() if what else next(iter(self.endpoints))
        if key not in self.endpoints:
            raise MonitorError(f"no endpoint '{clip(what, 20)}'; known: {', '.join(self.endpoints)}", True)
        endpoint = self.endpoints[key]
        body, latency = self.fetch(endpoint)
        shown = []
        for label, path in endpoint.fields.items():
            try:
                value = dig(body, path)
            except KeyError:
                value = "?"
            shown.append(f"{label} {_show(value)}")
        return f"api {key} ok {latency:.0f}ms" + (": " + ", ".join(shown) if shown else "")

    def _value(self, query: str) -> float | None:
        key, _, path = query.strip().partition(".")
        endpoint = self.endpoints.get(key.lower())
        if endpoint is None or not path:
            raise MonitorError(f"api values are endpoint.field, endpoints: {', '.join(self.endpoints)}", True)
        body, _ = self.fetch(endpoint)
        try:
            value = dig(body, endpoint.fields.get(path, path))
        except KeyError:
            return None
        if isinstance(value, bool):
            return 1.0 if value else 0.0
        try:
            return float(value)
        except (TypeError, ValueError):
            raise MonitorError(f"api {query} is not a number: {clip(str(value), 30)}", True) from None

    def close(self) -> None:
        self.http.close()


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return number(float(value))
    if isinstance(value, dict | list):
        return f"[{len(value)}]"
    return clip(str(value), 40)


def _error_detail(body: Any) -> str:
    if isinstance(body, dict):
        for key in ("message", "error", "detail", "title"):
            value = body.get(key)
            if isinstance(value, str):
                return clip(value, 60)
            if isinstance(value, dict) and isinstance(value.get("message"), str):
                return clip(value["message"], 60)
    return ""
