"""The PagerDuty Events API v2, Opsgenie Alert API and generic webhook parsers on any input: an event,
or the vendor's own refusal (a PayloadError), nothing else; every field bounded and on one line."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from incidents.sources import Incoming, PayloadError, generic, opsgenie, pagerduty
from tests.properties.strategies import QUICK, breaking, json_values, text_maps, texts, times, words

# Long enough to pass every documented limit (summary 1,024, alias 512, message 130).
long_texts = texts | st.text(max_size=1200) | words.map(lambda w: w * 60)
pagerduty_events = st.fixed_dictionaries(
    {
        "routing_key": words,
        "event_action": st.sampled_from(["trigger", "acknowledge", "resolve"]) | json_values,
        "payload": st.fixed_dictionaries(
            {
                "summary": long_texts,
                "source": long_texts,
                "severity": st.sampled_from(["critical", "error", "warning", "info"]) | texts,
            },
            optional={
                "component": texts | json_values,
                "group": texts,
                "class": texts,
                "custom_details": text_maps | json_values,
                "timestamp": times | json_values,
            },
        )
        | json_values,
    },
    optional={"dedup_key": long_texts | json_values, "links": json_values, "client_url": texts},
)
opsgenie_alerts = st.fixed_dictionaries(
    {"message": long_texts | json_values},
    optional={
        "alias": long_texts | json_values,
        "description": long_texts,
        "priority": st.sampled_from(["P1", "P2", "P3", "P4", "P5"]) | texts,
        "tags": st.lists(texts, max_size=5) | json_values,
        "details": text_maps | json_values,
        "source": texts,
        "entity": texts,
        "note": long_texts,
    },
)


def assert_one_line_and_bounded(event: Incoming | None) -> None:
    if event is None:
        return
    assert isinstance(event, Incoming)
    fields = [event.name, event.summary or "", event.severity or "", event.place or "", event.url or ""]
    fields += [text for pair in event.labels.items() for text in pair]
    for text in fields:
        assert len(text) <= 2000 and not breaking(text), (text, breaking(text))
    assert len(event.event_key) <= 200 and len(event.record_key) <= 200


@QUICK
@given(payload=json_values | pagerduty_events)
def test_any_pagerduty_event_is_one_event_or_an_invalid_event_answer(payload):
    try:
        event = pagerduty.parse_event(payload, "pd", "generated-key", "nonce")
    except PayloadError:
        return
    assert event.action in ("trigger", "acknowledge", "resolve")
    assert_one_line_and_bounded(event.incoming)


@QUICK
@given(payload=json_values | pagerduty_events)
def test_any_pagerduty_change_is_one_change_or_an_invalid_event_answer(payload):
    try:
        change = pagerduty.parse_change(payload)
    except PayloadError:
        return
    assert not breaking(change.summary) and not breaking(change.source)


@QUICK
@given(payload=json_values | opsgenie_alerts)
def test_any_opsgenie_alert_is_one_firing_event_or_an_unprocessable_answer(payload):
    try:
        event, note = opsgenie.parse_alert(payload, "og", "generated-alias", "nonce")
    except PayloadError:
        return
    assert_one_line_and_bounded(event)
    assert len(note) <= opsgenie.NOTE_LIMIT


@QUICK
@given(
    payload=json_values
    | st.fixed_dictionaries({}, optional={"note": long_texts, "user": texts, "source": texts})
)
def test_any_opsgenie_action_body_is_read_or_refused(payload):
    try:
        opsgenie.parse_action(payload, note_required=True)
    except PayloadError:
        return


paths = st.lists(
    st.sampled_from(["alert", "title", "0", "id", "state", "a.b"]) | words, min_size=1, max_size=4
).map(".".join)
field_maps = st.dictionaries(st.sampled_from(generic.FIELDS) | words, paths | json_values, max_size=5)
resolving = st.dictionaries(
    paths | words, st.lists(texts | st.integers() | st.booleans(), max_size=3) | json_values
)


@QUICK
@given(fields=field_maps | json_values, resolve_when=resolving | json_values)
def test_any_fields_and_resolve_when_are_a_spec_or_one_config_sentence(fields, resolve_when):
    try:
        spec = generic.spec_of(fields, resolve_when)
    except ValueError as exc:
        assert "\n" not in str(exc) and str(exc).startswith("'")
        return
    assert set(spec.paths) <= set(generic.FIELDS)


@QUICK
@given(data=st.data(), payload=json_values | st.dictionaries(words, json_values, max_size=5))
def test_any_generic_post_read_by_any_valid_map_is_one_event_or_a_payload_error(data, payload):
    try:
        spec = generic.spec_of(data.draw(field_maps), data.draw(resolving))
    except ValueError:
        return
    try:
        events = generic.parse_generic(payload, "gw", "nonce", spec)
    except PayloadError:
        return
    assert len(events) == 1
    assert_one_line_and_bounded(events[0])
