"""Backend monitors: a plain registry of short names to classes, built only when configured."""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor, wait

from config import Settings
from monitors.base_monitor import BaseMonitor, MonitorError, Result
from monitors.system import SystemMonitor

logger = logging.getLogger(__name__)

__all__ = ["BaseMonitor", "MonitorError", "Result", "MONITORS", "build_monitors", "check_all"]

# name -> (class, "is it configured?"); the system monitor needs nothing and is always on.
MONITORS: dict[str, tuple[type[BaseMonitor], object]] = {
    "system": (SystemMonitor, lambda s: True),
}

_fanout = ThreadPoolExecutor(max_workers=16, thread_name_prefix="fanout")


def build_monitors(settings: Settings) -> dict[str, BaseMonitor]:
    """Instantiate every configured monitor, keyed by registry name, in registry order."""
    built = {}
    for name, (cls, configured) in MONITORS.items():
        if configured(settings):
            built[name] = (
                cls.from_settings(settings)
                if hasattr(cls, "from_settings")
                else cls(timeout=settings.monitor_timeout)
            )
    return built


def check_all(monitors: dict[str, BaseMonitor], deadline: float) -> list[Result]:
    """Every monitor's check() concurrently; anything not back within `deadline` is a timeout."""
    started = time.monotonic()
    futures = {name: _fanout.submit(m.check) for name, m in monitors.items()}
    wait(futures.values(), timeout=deadline)
    results = []
    for name, future in futures.items():
        if future.done():
            results.append(future.result())
        else:
            elapsed = time.monotonic() - started
            results.append(Result(monitors[name].name, False, error="timeout", elapsed=elapsed))
    return results
