"""Prometheus over its HTTP API: health and targets for `status`, named PromQL for `metrics`."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from config import ConfigError, Settings
from conversation.composer import PAGE_BREAK
from monitors.base_monitor import BaseMonitor, MonitorError
from monitors.http import HttpClient, auth_refused, clip

logger = logging.getLogger(__name__)

# Series shown per answer; the rest are counted ("+4 more") and listed on the MORE page.
TOP_N = 3
LISTED = 50
RAW = "=promql"


@dataclass(frozen=True)
class Named:
    query: str
    unit: str = ""
    # "desc": the biggest values matter (cpu); "asc": the smallest do (up, free space).
    order: str = "desc"
    # What must feed Prometheus for a built-in query to have data (said when it has none).
    needs: str = ""


_NODE = "node_exporter on each host"
_APP = "your services to export {} (most HTTP client libraries do)"


BUILTIN = {
    "cpu": Named(
        '100 * (1 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle"}[5m])))', "%", needs=_NODE
    ),
    "memory": Named(
        "100 * (1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes)", "%", needs=_NODE
    ),
    "disk": Named(
        '100 * (1 - node_filesystem_avail_bytes{fstype!~"tmpfs|overlay|squashfs"}'
        ' / node_filesystem_size_bytes{fstype!~"tmpfs|overlay|squashfs"})',
        "%",
        needs=_NODE,
    ),
    "errors": Named(
        'sum by (job) (rate(http_requests_total{code=~"5.."}[5m]))',
        "/s",
        needs=_APP.format("http_requests_total with a code label"),
    ),
    "latency": Named(
        "histogram_quantile(0.95, sum by (le, job) (rate(http_request_duration_seconds_bucket[5m])))",
        "s",
        needs=_APP.format("the http_request_duration_seconds histogram"),
    ),
    "up": Named("up", "", "asc", needs="a scrape target in Prometheus's config"),
}
ALIASES = {"mem": "memory", "ram": "memory", "error": "errors", "err": "errors", "5xx": "errors",
           "p95": "latency", "lat": "latency", "targets": "up", "storage": "disk"}  # fmt: skip


def no_data_hint(key: str, named: Named) -> str:
    """' It needs node_exporter on each host.' for a built-in query with no series; '' for yours."""
    return f" It needs {named.needs}." if named.needs else ""


def parse_queries(section: Any) -> dict[str, Named]:
    """Built-ins overlaid with the file's `queries:` map; ConfigError naming a bad entry."""
    queries = dict(BUILTIN)
    if section is None:
        return queries
    if not isinstance(section, dict):
        raise ConfigError("OPERATOR_CONFIG: `queries` must map names to PromQL")
    for name, spec in section.items():
        key = str(name).strip().lower()
        if not key.replace("_", "").replace("-", "").isalnum():
            raise ConfigError(f"OPERATOR_CONFIG: query name {name!r} must be one word (letters, digits, _ -)")
        if isinstance(spec, str):
            spec = {"query": spec}
        if not isinstance(spec, dict) or not isinstance(spec.get("query"), str) or not spec["query"].strip():
            raise ConfigError(f"OPERATOR_CONFIG: queries.{key} needs a PromQL string (or query: ...)")
        unknown = set(spec) - {"query", "unit", "order"}
        if unknown:
            raise ConfigError(
                f"OPERATOR_CONFIG: queries.{key} has unknown key(s) {', '.join(sorted(unknown))}"
            )
        order = spec.get("order", "desc")
        if order not in ("asc", "desc"):
            raise ConfigError(f"OPERATOR_CONFIG: queries.{key}.order must be asc or desc, not {order!r}")
        queries[key] = Named(spec["query"].strip(), str(spec.get("unit", "")), order)
    return queries


class PrometheusMonitor(BaseMonitor):
    name = "prom"
    description = "Prometheus targets and named PromQL queries"

    def __init__(self, url: str, timeout: float = 4.0, queries: dict[str, Named] | None = None):
        super().__init__(timeout)
        self.identity = url
        self.http = HttpClient(url, timeout)
        self.queries = queries if queries is not None else dict(BUILTIN)

    @classmethod
    def from_settings(cls, settings: Settings) -> PrometheusMonitor:
        queries = parse_queries(settings.file.get("queries"))
        return cls(settings.prometheus_url, settings.monitor_timeout, queries)

    def resolve(self, word: str) -> str | None:
        """The configured query name a typed word means, or None."""
        word = word.lower()
        for candidate in (word, ALIASES.get(word, ""), word + "s", word.rstrip("s")):
            if candidate in self.queries:
                return candidate
        return None

    def _check(self) -> str:
        response = self.http.request("GET", "/-/healthy")
        if response.status_code in (401, 403):
            raise auth_refused(response.status_code)
        if response.status_code != 200:
            raise MonitorError(f"unhealthy (HTTP {response.status_code})")
        targets = self._api("/api/v1/targets", {"state": "active"}).get("activeTargets", [])
        if not targets:
            return "ok, no targets"
        names = _target_names(targets)
        down = [names[i] for i, t in enumerate(targets) if t.get("health") != "up"]
        line = f"ok {len(targets) - len(down)}/{len(targets)} up"
        if down:
            shown = ", ".join(down[:3]) + (f" +{len(down) - 3}" if len(down) > 3 else "")
            line += f" (down: {shown})"
        return line

    def _query(self, what: str, args: list[str]) -> str:
        if what == RAW:
            expr, label, named = " ".join(args), "", Named(" ".join(args))
        else:
            key = self.resolve(what)
            if key is None:
                raise MonitorError(f"no metric '{clip(what, 20)}'; known: {', '.join(self.queries)}", True)
            expr, label, named = self.queries[key].query, key, self.queries[key]
        data = self._api("/api/v1/query", {"query": expr})
        short = format_result(label, data, named)
        if data.get("resultType") in ("vector", "matrix") and len(_series(data)) > TOP_N:
            # "+2 more" promises the rest: they, and only they, are the MORE page.
            return short + PAGE_BREAK + format_result(label, data, named, LISTED, skip=TOP_N)
        return short

    def _value(self, query: str) -> float | None:
        key = self.resolve(query) if query.replace("_", "").isalnum() else None
        named = self.queries[key] if key else Named(query)
        values = [v for _, v in _series(self._api("/api/v1/query", {"query": named.query}))]
        values = [v for v in values if not math.isnan(v)]
        if not values:
            return None
        return min(values) if named.order == "asc" else max(values)

    def _api(self, path: str, params: dict[str, str]) -> dict[str, Any]:
        response = self.http.request("GET", path, params=params)
        if response.status_code in (401, 403):
            raise auth_refused(response.status_code)
        try:
            body = response.json()
        except ValueError:
            raise MonitorError(f"HTTP {response.status_code}, not the Prometheus API") from None
        if not isinstance(body, dict):
            raise MonitorError("unexpected answer from the Prometheus API")
        if body.get("status") != "success":
            kind, error = body.get("errorType", "error"), body.get("error", f"HTTP {response.status_code}")
            permanent = kind in ("bad_data", "execution") or response.status_code in (400, 422)
            prefix = {"bad_data": "bad query", "execution": "query failed", "unavailable": "unavailable",
                      "timeout": "query timeout"}.get(kind, kind)  # fmt: skip
            raise MonitorError(f"{prefix}: {clip(error, 90)}", permanent)
        return body.get("data") or {}

    def close(self) -> None:
        self.http.close()


def _target_names(targets: list[dict]) -> list[str]:
    """Short names: the instance's host without port when that is unique, else the instance."""
    instances = [str(t.get("labels", {}).get("instance") or t.get("scrapeUrl", "?")) for t in targets]
    hosts = [i.rsplit(":", 1)[0] if i.count(":") == 1 else i for i in instances]
    return [h if hosts.count(h) == 1 else i for h, i in zip(hosts, instances, strict=True)]


def _series(data: dict[str, Any]) -> list[tuple[dict[str, str], float]]:
    """(labels, value) per series; the newest sample of each range."""
    kind = data.get("resultType")
    if kind == "scalar":
        return [({}, float(data["result"][1]))]
    if kind == "string":
        raise MonitorError(f"a string, not a number: {clip(data['result'][1], 40)}", True)
    out = []
    for item in data.get("result") or []:
        sample = item.get("value") if kind == "vector" else (item.get("values") or [None])[-1]
        if sample is not None:
            out.append((item.get("metric", {}), float(sample[1])))
    return out


def format_result(label: str, data: dict[str, Any], named: Named, top: int = TOP_N, skip: int = 0) -> str:
    """'cpu: 91.2% api-1, 40.1% api-2 +3 more' from an instant query's data (`top` series shown).

    `skip`: the series an earlier answer showed are left out ('cpu 4-6 of 6: ...', for MORE).
    """
    head = f"{label}: " if label else ""
    if data.get("resultType") == "string":
        return head + clip(data["result"][1], 120)
    series = _series(data)
    if not series:
        return head + "no data"
    sign = 1 if named.order == "asc" else -1
    series.sort(key=lambda s: (math.isnan(s[1]), sign * s[1] if not math.isnan(s[1]) else 0))
    names = short_labels([labels for labels, _ in series])
    parts = [
        f"{number(v)}{named.unit}" + (f" {n}" if n else "") for (_, v), n in zip(series, names, strict=True)
    ]
    if skip:
        rest = parts[skip : skip + top]
        unlisted = len(parts) - skip - len(rest)
        span = f"{skip + 1}-{skip + len(rest)} of {len(parts)}: "
        return (
            (f"{label} " if label else "")
            + span
            + ", ".join(rest)
            + (f" ({unlisted} not listed)" if unlisted else "")
        )
    if len(parts) <= top:
        return head + ", ".join(parts)
    more = f" +{len(parts) - top} more" if top == TOP_N else f" ({len(parts) - top} not listed)"
    return head + ", ".join(parts[:top]) + more


def short_labels(label_sets: list[dict[str, str]]) -> list[str]:
    """Only the label values that tell the series apart, ports dropped: 'api-1', 'checkout/500'."""
    keys = sorted({k for labels in label_sets for k in labels if k != "__name__"})
    varying: Sequence[str] = [k for k in keys if len({labels.get(k) for labels in label_sets}) > 1]
    if not varying and len(label_sets) == 1:
        only = label_sets[0]
        varying = [k for k in ("job", "instance") if k in only][:1]
    names = []
    for labels in label_sets:
        values = [str(labels.get(k, "")) for k in varying if labels.get(k)]
        values = [
            v.rsplit(":", 1)[0] if v.count(":") == 1 and v.rsplit(":", 1)[1].isdigit() else v for v in values
        ]
        names.append(clip("/".join(values), 30))
    if len(set(names)) < len(names):  # dropping ports merged two series: keep them apart
        names = [clip("/".join(str(labels.get(k, "")) for k in varying), 30) for labels in label_sets]
    return names


def number(value: float) -> str:
    """Compact: 0.0123, 3.14, 42.1, 1234, 12.3k, 4.5M."""
    if math.isnan(value) or math.isinf(value):
        return str(value)
    size = abs(value)
    for limit, scale, suffix in ((1e12, 1e12, "T"), (1e9, 1e9, "G"), (1e6, 1e6, "M"), (1e4, 1e3, "k")):
        if size >= limit:
            return f"{value / scale:.3g}{suffix}"
    if size >= 100:
        return f"{value:.0f}"
    return f"{value:.3g}"
