"""Grafana Alerting's webhook contact point -> `Incoming` events: Alertmanager's payload, plus links.

Grafana's notification is Alertmanager's webhook (alerts with labels, annotations, fingerprint,
startsAt, generatorURL) with a few fields of its own: each alert's `dashboardURL`, `panelURL`,
`silenceURL`, `values` and `valueString`, and the notification's `title`, `state`, `message` and
`orgId`. Alertmanager's parser reads the shared part; this adapter keeps the links on the alert.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from incidents.sources import Incoming, Source, bounded, text_of
from incidents.sources.alertmanager import parse_alertmanager

# Labels that carry the alert's Grafana links (the SMS and the dashboard show the url).
LINKS = {"dashboardURL": "grafana_dashboard", "panelURL": "grafana_panel"}


def parse_grafana(payload: Any) -> list[Incoming]:
    """Alerts of one Grafana webhook notification, linked to their panel (or dashboard) when set."""
    events = parse_alertmanager(payload)
    own = [_links(alert, index) for index, alert in enumerate(payload["alerts"])]
    # The record is the notification's group: it keeps the first panel and dashboard its alerts name.
    shared = {label: next((links[label] for links in own if links[label]), "") for label in LINKS.values()}
    return [
        replace(
            event,
            source=Source.GRAFANA,
            # Grafana's fingerprint, like Alertmanager's, names one alert of one rule.
            event_key=bounded("grafana:" + event.event_key.removeprefix("am:")),
            labels={**event.labels, **{label: link for label, link in shared.items() if link}},
            url=_shown(links) or _shown(shared) or event.url,
        )
        for event, links in zip(events, own, strict=True)
    ]


def _links(alert: dict[str, Any], index: int) -> dict[str, str]:
    return {label: text_of(alert.get(name), 500, f"alerts[{index}].{name}") for name, label in LINKS.items()}


def _shown(links: dict[str, str]) -> str:
    """The link a page shows: the panel, else the dashboard."""
    return links["grafana_panel"] or links["grafana_dashboard"]
