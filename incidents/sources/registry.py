"""Every webhook source's parser by name: a payload in, `Incoming` events out (or PayloadError).

The webhook doors take their parser from here, and tests walk it, so a new source is covered by
the property and flattening tests the day it is added.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from incidents.sources import Incoming, Source
from incidents.sources.alertmanager import parse_alertmanager
from incidents.sources.datadog import parse_datadog
from incidents.sources.generic import parse_generic
from incidents.sources.grafana import parse_grafana

Parser = Callable[[Any], list[Incoming]]


def datadog_events(payload: Any) -> list[Incoming]:
    """parse_datadog as a list: empty for a notification that is no alert state."""
    event = parse_datadog(payload)
    return [] if event is None else [event]


def generic_events(payload: Any) -> list[Incoming]:
    """parse_generic with GoAlert's fields (a door passes its entry's own `fields:` map)."""
    return parse_generic(payload, "generic", "delivery")


PARSERS: dict[Source, Parser] = {
    Source.ALERTMANAGER: parse_alertmanager,
    Source.DATADOG: datadog_events,
    Source.GRAFANA: parse_grafana,
    Source.GENERIC: generic_events,
}
