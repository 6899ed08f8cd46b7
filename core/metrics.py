"""The /metrics text: prometheus_client's counters, merged across gunicorn workers.

Each package defines its own counters next to the code that counts. production.py sets
PROMETHEUS_MULTIPROC_DIR before the workers import anything, which makes prometheus_client keep
values in per-process files that `exposition` merges.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.registry import Collector


def exposition(extra: Iterable[Collector] = ()) -> tuple[bytes, str]:
    """The text format: this process's (or every process's) counters, then `extra` collectors."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        body = generate_latest(registry)
    else:
        body = generate_latest(REGISTRY)
    stored = CollectorRegistry()
    for collector in extra:
        stored.register(collector)
    return body + generate_latest(stored), CONTENT_TYPE_LATEST
