"""A real Alertmanager whose receivers are `pagerduty_configs` and `opsgenie_configs` pointed at Operator."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests

from tests.support.alertmanager_server import standalone_alertmanager


def vendor_config(operator: str, pd_key: str, og_key: str) -> str:
    """Alerts labelled receiver=pd go out as PagerDuty events, receiver=og as Opsgenie alerts."""
    return f"""
route:
  receiver: pd
  group_by: [alertname]
  group_wait: 1s
  group_interval: 2s
  repeat_interval: 1h
  routes:
    - matchers: ['receiver="og"']
      receiver: og
receivers:
  - name: pd
    pagerduty_configs:
      - url: {operator}/v2/enqueue
        routing_key: {pd_key}
        send_resolved: true
  - name: og
    opsgenie_configs:
      - api_url: {operator}/integrations/og/
        api_key: {og_key}
        send_resolved: true
        update_alerts: true
        priority: P2
"""


@contextmanager
def alertmanager_for(directory: Path, config: str) -> Iterator[str]:
    """A standalone Alertmanager (no cluster) with `config`; yields its URL."""
    with standalone_alertmanager(directory, "am-vendor", config) as url:
        yield url


def post_alert(alertmanager: str, labels: dict[str, str], summary: str, resolved: bool = False) -> None:
    """Fire (or resolve, with an end in the past) one alert through Alertmanager's API v2."""
    now = datetime.now(UTC)
    alert = {
        "labels": labels,
        "annotations": {"summary": summary},
        "startsAt": (now - timedelta(minutes=5)).isoformat(),
        "endsAt": (now - timedelta(seconds=1) if resolved else now + timedelta(hours=1)).isoformat(),
    }
    requests.post(f"{alertmanager}/api/v2/alerts", json=[alert], timeout=5).raise_for_status()


def failed_sends(alertmanager: str, integration: str) -> float:
    """How many notifications to `integration` (pagerduty, opsgenie) failed, by Alertmanager's own metric."""
    total = 0.0
    for line in requests.get(f"{alertmanager}/metrics", timeout=5).text.splitlines():
        if (
            line.startswith("alertmanager_notifications_failed_total{")
            and f'integration="{integration}"' in line
        ):
            total += float(line.rsplit(" ", 1)[1])
    return total


def sent(alertmanager: str, integration: str) -> float:
    """How many notifications Alertmanager delivered to `integration`."""
    for line in requests.get(f"{alertmanager}/metrics", timeout=5).text.splitlines():
        if line.startswith(f'alertmanager_notifications_total{{integration="{integration}"}}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0
