"""Settings with an `integrations:` section, and what a test reads back from the store."""

from __future__ import annotations

import base64

from sqlalchemy import func, select

from config import Settings, integration_heartbeats
from incidents import records
from outbox.queue import outbox
from tests.support.apps import with_settings

PD_KEY = "a" * 16 + "0123456789abcdef"  # 32 characters, as PagerDuty's routing keys
OG_KEY = "og-key-5e1f0c2d"
AM_KEY = "am-integration-key"
DD_KEY = "dd-integration-key"
GF_KEY = "gf-contact-point-key"
GW_KEY = "gw-generic-key"
KEYS = {
    "pd": PD_KEY,
    "og": OG_KEY,
    "am": AM_KEY,
    "dd": DD_KEY,
    "gf": GF_KEY,
    "gw": GW_KEY,
    "gw2": GW_KEY + "2",
}
KINDS = {
    "pd": "pagerduty",
    "og": "opsgenie",
    "am": "alertmanager",
    "dd": "datadog",
    "gf": "grafana",
    "gw": "generic",
    "gw2": "generic",
}


def entry(name: str, **extra) -> dict:
    return {"name": name, "kind": KINDS[name], "key_env": f"{name.upper()}_KEY", **extra}


def with_integrations(settings: Settings, *entries: dict, sections: dict | None = None) -> Settings:
    """`settings` with these `integrations:` entries, their secrets from KEYS, and other file sections."""
    file = {**(sections or {}), "integrations": list(entries)}
    secrets = {e["name"]: KEYS[e["name"]] for e in entries}
    heartbeats = settings.heartbeats + integration_heartbeats(file["integrations"])
    return with_settings(settings, file=file, integrations=secrets, heartbeats=heartbeats)


def basic(password: str, user: str = "sender") -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def stored(services) -> tuple[int, int, int]:
    """(alerts, alert events, texts) in the store."""
    with services.engine.connect() as conn:
        return tuple(
            conn.execute(select(func.count()).select_from(table)).scalar_one()
            for table in (records.alerts, records.alert_events, outbox)
        )


def alerts(services) -> list[records.Alert]:
    with services.engine.connect() as conn:
        return records.recent(conn, 100)[::-1]
