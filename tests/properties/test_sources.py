"""Every webhook source's parser, and the body decoder in front of them, on any input: events or
PayloadError, nothing else; fields of bounded size, each one line."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from incidents.sources import Incoming, PayloadError, Source, decode
from incidents.sources.registry import PARSERS
from tests.properties.strategies import (
    QUICK,
    alertmanager_payloads,
    breaking,
    datadog_custom,
    datadog_default,
    generic_posts,
    grafana_payloads,
    json_values,
)

# The most a field may hold after parsing: what the store's columns and the texts can take.
LIMITS = {
    "name": 200, "summary": 500, "severity": 32, "place": 40, "event_key": 200, "record_key": 200,
    "url": 2000, "group_key": 4000 + len("fingerprint:"), "transition": 16, "group_status": 16,
}  # fmt: skip
SHAPED = {
    Source.ALERTMANAGER: alertmanager_payloads,
    Source.DATADOG: datadog_custom | datadog_default,
    Source.GRAFANA: grafana_payloads,
    Source.GENERIC: generic_posts,
}


def assert_well_formed(events: object) -> None:
    assert isinstance(events, list)
    for event in events:
        assert isinstance(event, Incoming)
        texts = [getattr(event, name) or "" for name in LIMITS]
        for name, limit in LIMITS.items():
            assert len(getattr(event, name) or "") <= limit, name
        for key, value in event.labels.items():
            assert len(key) <= 100 and len(value) <= 500
            texts += [key, value]
        for text in texts:
            assert not breaking(text), (text, breaking(text))


def parsed(parse, payload) -> object:
    try:
        return parse(payload)
    except PayloadError:
        return []


def test_every_registered_source_has_a_shaped_strategy():
    assert set(SHAPED) == set(PARSERS)


@pytest.mark.parametrize("source", list(PARSERS), ids=str)
@QUICK
@given(payload=json_values)
def test_any_json_gives_events_or_a_payload_error(source, payload):
    assert_well_formed(parsed(PARSERS[source], payload))


@pytest.mark.parametrize("source", list(PARSERS), ids=str)
@QUICK
@given(data=st.data())
def test_any_payload_of_the_sources_shape_gives_one_line_bounded_fields(source, data):
    payload = data.draw(SHAPED[source])
    events = parsed(PARSERS[source], payload)
    assert_well_formed(events)
    if source in (Source.ALERTMANAGER, Source.GRAFANA):
        assert len(events) <= len(payload["alerts"])
    else:
        assert len(events) <= 1


@QUICK
@given(body=st.binary(max_size=300))
def test_any_bytes_decode_to_json_or_a_payload_error(body):
    try:
        decode(body)
    except PayloadError:
        pass


@QUICK
@given(value=json_values)
def test_json_within_the_limits_decodes_to_itself(value):
    assert decode(json.dumps(value).encode()) == value


@QUICK
@given(
    depth=st.integers(min_value=0, max_value=200), escapes=st.text(st.sampled_from('\\"[]{}'), max_size=50)
)
def test_nesting_is_counted_outside_strings_only(depth, escapes):
    inside = json.dumps(escapes)  # brackets and escaped quotes in a string are only text
    body = ("[" * depth + inside + "]" * depth).encode()
    try:
        assert decode(body) is not None and depth <= 32
    except PayloadError as exc:
        assert depth > 32 and "nests deeper" in str(exc)
