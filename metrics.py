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


def exposition(engine=None) -> tuple[bytes, str]:
    """The text format for /metrics: merged across processes when in multiprocess mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        body = generate_latest(registry)
    else:
        body = generate_latest(REGISTRY)
    if engine is not None:
        stored = CollectorRegistry()
        stored.register(StoreCollector(engine))
        body += generate_latest(stored)
    return body, CONTENT_TYPE_LATEST


# --- outbound SMS and alerting -------------------------------------------------------------
# The worker is its own process (maybe on another host), so what it does is read back from the
# store at scrape time: always right, whichever process sent or evaluated.

SMS_OPTED_OUT = Counter(
    "operator_sms_opted_out_total", "Sends refused with 21610: the recipient replied STOP (this process)"
)


class StoreCollector:
    """Outbox depth, sent/failed by error code, delivery outcomes and rule states from the store."""

    def __init__(self, engine):
        self.engine = engine

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily
        from sqlalchemy import func, select

        import alerting
        import sms

        o = sms.outbox.c
        depth = GaugeMetricFamily("operator_outbox_depth", "Texts waiting to be sent (queued or sending)")
        by_status = GaugeMetricFamily(
            "operator_outbox_messages", "Outbox rows by status and kind", labels=["status", "kind"]
        )
        failed = GaugeMetricFamily(
            "operator_sms_failed_messages",
            "Texts that failed for good, by Twilio error code",
            labels=["code"],
        )
        delivery = GaugeMetricFamily(
            "operator_sms_delivery", "Texts by Twilio's last reported delivery status", labels=["status"]
        )
        rules = GaugeMetricFamily("operator_rule_state", "Alert rules by state", labels=["rule", "state"])
        with self.engine.connect() as conn:
            rows = conn.execute(select(o.status, o.kind, func.count()).group_by(o.status, o.kind)).all()
            codes = conn.execute(
                select(o.error_code, func.count()).where(o.status == "failed").group_by(o.error_code)
            ).all()
            outcomes = conn.execute(
                select(o.delivery_status, func.count())
                .where(o.delivery_status.is_not(None))
                .group_by(o.delivery_status)
            ).all()
            states = conn.execute(select(alerting.rule_states.c.rule, alerting.rule_states.c.state)).all()
        depth.add_metric([], sum(n for status, _, n in rows if status in ("queued", "sending")))
        for status, kind, count in rows:
            by_status.add_metric([status, kind], count)
        for code, count in codes:
            failed.add_metric([code or "unknown"], count)
        for status, count in outcomes:
            delivery.add_metric([status], count)
        for rule, state in states:
            for known in alerting.STATES:
                rules.add_metric([rule, known], 1.0 if state == known else 0.0)
        yield from (depth, by_status, failed, delivery, rules)
