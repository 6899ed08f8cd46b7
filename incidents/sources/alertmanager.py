"""Alertmanager's webhook (payload version 4) -> `Incoming` events, one per alert."""

from __future__ import annotations

import json
from typing import Any

from incidents.sources import (
    Incoming,
    PayloadError,
    Source,
    Status,
    bounded,
    digest,
    parse_time,
    place_of,
    strings,
    text_of,
)


def parse_alertmanager(payload: Any) -> list[Incoming]:
    """Alerts of one Alertmanager notification (webhook payload version 4)."""
    if not isinstance(payload, dict):
        raise PayloadError("expected a JSON object (Alertmanager webhook payload)")
    alerts = payload.get("alerts")
    if not isinstance(alerts, list):
        raise PayloadError("'alerts' must be a list (Alertmanager webhook payload version 4)")
    common = strings(payload.get("commonLabels"), "commonLabels")
    common_notes = strings(payload.get("commonAnnotations"), "commonAnnotations")
    shared_summary = common_notes.get("summary") or common_notes.get("description") or ""
    group_labels = strings(payload.get("groupLabels"), "groupLabels")
    group_key = text_of(payload.get("groupKey"), 4000, "groupKey")
    truncated = payload.get("truncatedAlerts") or 0
    # A bool is an int to Python; past a million it is no count Alertmanager would send.
    if isinstance(truncated, bool) or not isinstance(truncated, int) or not 0 <= truncated <= 1_000_000:
        raise PayloadError("'truncatedAlerts' must be a whole number")
    external = text_of(payload.get("externalURL"), 2000, "externalURL") or None
    result = []
    for index, alert in enumerate(alerts):
        if not isinstance(alert, dict):
            raise PayloadError(f"alerts[{index}] must be an object")
        labels = strings(alert.get("labels"), f"alerts[{index}].labels")
        annotations = strings(alert.get("annotations"), f"alerts[{index}].annotations")
        reported = alert.get("status") or payload.get("status")
        if reported not in ("firing", "resolved"):
            raise PayloadError(f"alerts[{index}].status must be 'firing' or 'resolved'")
        status = Status(reported)
        where = f"alerts[{index}]"
        fingerprint = text_of(alert.get("fingerprint"), 100, f"{where}.fingerprint") or digest(
            json.dumps(labels, sort_keys=True)
        )
        starts = text_of(alert.get("startsAt"), 64, f"{where}.startsAt")
        started_at = parse_time(alert.get("startsAt"), f"{where}.startsAt")
        ended_at = parse_time(alert.get("endsAt"), f"{where}.endsAt") if status == Status.RESOLVED else None
        # Without a groupKey (hand-made payloads) each alert is its own group.
        key = group_key or f"fingerprint:{fingerprint}"
        result.append(
            Incoming(
                source=Source.ALERTMANAGER,
                event_key=bounded(f"am:{fingerprint}:{status}:{starts}"),
                record_key=bounded("group:" + digest(key)),
                status=status,
                name=(labels.get("alertname") or common.get("alertname") or "alert")[:200],
                # One alert's summary ("CPU high on web-1") would mislead for a group of many.
                summary=shared_summary
                or (
                    (annotations.get("summary") or annotations.get("description") or "")
                    if len(alerts) == 1
                    else ""
                ),
                severity=labels.get("severity", "")[:32],
                # Matchers for a silence: what the whole group shares, so it silences the group.
                labels=common or group_labels or labels,
                url=text_of(alert.get("generatorURL"), 2000, f"{where}.generatorURL") or external,
                group_key=key,
                started_at=started_at,
                ended_at=ended_at,
                place=place_of(labels, common),
                truncated=truncated,
                group_status=text_of(payload.get("status"), 16, "status"),
            )
        )
    return result
