"""Alerts as the webhooks deliver them, for tests that act on alerts over SMS.

An app that takes these must have alertmanager_token (and datadog_token) set to WEBHOOK_TOKEN.
"""

from __future__ import annotations

from core import db
from incidents import records
from outbox.backends import ConsoleBackend
from outbox.sender import Sender
from rate_limiter import RateLimiter

WEBHOOK_TOKEN = "am-token-commands"


def fire(
    client, name: str, hosts: tuple[str, ...] = ("web-1",), summary: str = "", labels: dict | None = None
) -> int:
    """Deliver an Alertmanager notification for one group (its alerts sharing `labels`); returns the alert id."""
    extra = labels or {}
    alerts = [
        {
            "status": "firing",
            "labels": {"alertname": name, "instance": f"{host}:9100", "severity": "page", **extra},
            "annotations": {"summary": summary},
            "startsAt": "2026-01-01T00:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "fingerprint": f"{name}-{host}",
        }
        for host in hosts
    ]
    body = {
        "version": "4",
        "groupKey": f'{{}}:{{alertname="{name}"}}',
        "status": "firing",
        "truncatedAlerts": 0,
        "commonLabels": {"alertname": name, "severity": "page", **extra},
        "commonAnnotations": {"summary": summary},
        "alerts": alerts,
    }
    response = client.post(
        "/webhook/alertmanager", json=body, headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}"}
    )
    assert response.status_code == 200, response.json
    return response.json["alerts"][0]


def fire_datadog(client) -> int:
    body = {
        "alert_id": "42",
        "cycle_key": "c1",
        "transition": "Triggered",
        "title": "Queue depth",
        "tags": "env:prod",
    }
    response = client.post(
        "/webhook/datadog", json=body, headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}"}
    )
    return response.json["alerts"][0]


def alert(services, alert_id: int) -> records.Alert:
    with services.engine.connect() as conn:
        return records.get(conn, alert_id)


def age(services, alert_id: int, **seconds_ago: float) -> None:
    """Move an alert's timestamps into the past, as if time had passed."""
    with services.engine.begin() as conn:
        records.set_fields(conn, alert_id, **{k: db.now() - v for k, v in seconds_ago.items()})


def deliver(app) -> None:
    """Send everything queued through the real sender (console backend: the carrier 'accepted' it)."""
    services = app.extensions["operator"]
    storm = RateLimiter(services.limiter.storage, "1000 per minute", "alerts")
    sender = Sender(services.engine, services.settings, ConsoleBackend(), storm, records, "test-sender")
    while sender.step():
        pass
