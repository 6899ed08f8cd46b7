"""Backend monitors: a plain registry of short names to classes, built only when configured."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import replace

from config import Settings
from monitors.base_monitor import BaseMonitor, MonitorError, Result
from monitors.cache import MonitorCache, age_suffix
from monitors.custom_api import CustomApiMonitor
from monitors.database import DatabaseMonitor
from monitors.logs import LogFilesMonitor
from monitors.loki import LokiMonitor
from monitors.newrelic import NewRelicMonitor
from monitors.prometheus import PrometheusMonitor
from monitors.system import SystemMonitor

logger = logging.getLogger(__name__)

__all__ = [
    "BaseMonitor",
    "MonitorError",
    "Result",
    "MONITORS",
    "build_monitors",
    "check_all",
    "cached_check",
    "cached_query",
    "query_all",
]

# name -> (class, "is it configured?"), in `status` order; the system monitor needs nothing.
MONITORS: dict[str, tuple[type[BaseMonitor], Callable[[Settings], bool]]] = {
    "prometheus": (PrometheusMonitor, lambda s: bool(s.prometheus_url)),
    "database": (DatabaseMonitor, lambda s: bool(s.monitor_db_url)),
    "newrelic": (NewRelicMonitor, lambda s: bool(s.newrelic_api_key)),
    "api": (CustomApiMonitor, lambda s: bool(s.custom_api_url)),
    "loki": (LokiMonitor, lambda s: bool(s.loki_url)),
    "logfiles": (LogFilesMonitor, lambda s: bool(s.log_files)),
    "system": (SystemMonitor, lambda s: True),
}

_fanout = ThreadPoolExecutor(max_workers=16, thread_name_prefix="fanout")


def build_monitors(settings: Settings) -> dict[str, BaseMonitor]:
    """Instantiate every configured monitor, keyed by registry name, in registry order."""
    built: dict[str, BaseMonitor] = {}
    cache = MonitorCache.from_settings(settings)
    for name, (cls, configured) in MONITORS.items():
        if configured(settings):
            monitor = cls.from_settings(settings)
            monitor.cache = cache
            built[name] = monitor
    return built


def _key(monitor: BaseMonitor, *parts: str) -> str:
    return "\x1f".join((type(monitor).__name__, getattr(monitor, "identity", ""), *parts))


def cached_check(monitor: BaseMonitor) -> Result:
    """monitor.check(), through the shared short cache when the monitor has one."""
    cache = monitor.cache
    return cache.fetch(_key(monitor, "check"), monitor.check) if cache else monitor.check()


def cached_query(monitor: BaseMonitor, what: str, args: list[str] | None = None) -> Result:
    """monitor.query(what, args), through the shared short cache when the monitor has one."""
    args = list(args or [])
    cache = monitor.cache
    if cache is None:
        return monitor.query(what, args)
    return cache.fetch(_key(monitor, "query", what, *args), lambda: monitor.query(what, args))


def check_all(monitors: dict[str, BaseMonitor], deadline: float) -> list[Result]:
    """Every monitor's check() concurrently; anything not back within `deadline` is a timeout.

    Cached answers older than a few seconds say their age in the text ("ok 12/13 up (20s old)").
    """
    started = time.monotonic()
    futures = {name: _fanout.submit(cached_check, m) for name, m in monitors.items()}
    wait(futures.values(), timeout=deadline)
    results = []
    for name, future in futures.items():
        if future.done():
            result = future.result()
            suffix = age_suffix(result)
            results.append(replace(result, text=result.text + suffix) if suffix else result)
        else:
            elapsed = time.monotonic() - started
            results.append(Result(monitors[name].name, False, error="timeout", elapsed=elapsed))
    return results


def query_all(calls: list[tuple[BaseMonitor, str, list[str]]], deadline: float) -> list[Result]:
    """Several cached queries concurrently, in order; "timeout" for any not back by `deadline`."""
    started = time.monotonic()
    futures = [_fanout.submit(cached_query, m, what, args) for m, what, args in calls]
    wait(futures, timeout=deadline)
    return [
        f.result() if f.done() else Result(m.name, False, error="timeout", elapsed=time.monotonic() - started)
        for f, (m, _, _) in zip(futures, calls, strict=True)
    ]
