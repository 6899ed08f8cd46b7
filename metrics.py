"""Prometheus metrics, correct across gunicorn workers.

production.py sets PROMETHEUS_MULTIPROC_DIR before the workers import this module, which makes
prometheus_client keep values in per-process files that /metrics merges.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

COMMANDS = Counter("operator_commands_total", "Inbound SMS by command and outcome", ["command", "outcome"])
SIGNATURE_REJECTIONS = Counter(
    "operator_signature_rejections_total", "Requests refused for a missing or wrong signature"
)
RATE_LIMITED = Counter("operator_rate_limited_total", "Inbound SMS over the per-number rate limit")
REPLY_LATENCY = Histogram(
    "operator_reply_latency_seconds",
    "Time from a verified request to its reply",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 12, 15),
)
WEBHOOK_EVENTS = Counter(
    "operator_webhook_events_total", "Alert webhook events by source and outcome", ["source", "outcome"]
)


def exposition() -> tuple[bytes, str]:
    """The text format for /metrics: merged across processes when in multiprocess mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
