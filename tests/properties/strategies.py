"""Hypothesis strategies for outside input: any text (control and format characters favoured),
any JSON value, and the payload shapes each webhook source sends."""

from __future__ import annotations

import unicodedata

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

# Small and quick: these run in `make test`. The fixtures they use hold nothing per example.
QUICK = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
BREAKING = ("Cc", "Cf", "Zl", "Zp")
HOSTILE_CHARACTERS = (
    "\n\r\x00\x0b\x0c\x1b\x7f\x85\x9b\u2028\u2029\u202a\u202e\u2066\u2069\u200b\u200d\u200f\ufeff"
)

texts = st.text(st.sampled_from(HOSTILE_CHARACTERS) | st.characters(exclude_categories=["Cs"]), max_size=40)
words = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=20,
)
text_maps = st.dictionaries(texts | words, texts | words, max_size=5)
times = st.sampled_from(["2026-01-01T00:00:00Z", "0001-01-01T00:00:00Z", "1764216148000", ""]) | texts


def breaking(text: str) -> list[str]:
    """Characters of `text` that break, hide or reorder a line."""
    return [c for c in text if unicodedata.category(c) in BREAKING]


alertmanager_alerts = st.fixed_dictionaries(
    {"status": st.sampled_from(["firing", "resolved"]) | texts, "labels": text_maps},
    optional={
        "annotations": text_maps,
        "fingerprint": texts,
        "startsAt": times,
        "endsAt": times,
        "generatorURL": texts,
    },
)
alertmanager_payloads = st.fixed_dictionaries(
    {"alerts": st.lists(alertmanager_alerts, max_size=4)},
    optional={
        "version": st.just("4"),
        "status": st.sampled_from(["firing", "resolved"]),
        "groupKey": texts,
        "commonLabels": text_maps,
        "commonAnnotations": text_maps,
        "groupLabels": text_maps,
        "externalURL": texts,
        "truncatedAlerts": st.integers(min_value=-5, max_value=2_000_000),
    },
)
grafana_payloads = st.builds(
    lambda payload, links, extra: payload | {"alerts": [a | links for a in payload["alerts"]]} | extra,
    alertmanager_payloads,
    st.fixed_dictionaries(
        {},
        optional={
            "dashboardURL": texts | json_values,
            "panelURL": texts,
            "silenceURL": texts,
            "values": st.dictionaries(words, st.floats(allow_nan=False) | st.none(), max_size=3),
            "valueString": texts,
        },
    ),
    st.fixed_dictionaries(
        {}, optional={"orgId": st.integers(), "title": texts, "state": texts, "message": texts}
    ),
)
generic_posts = st.fixed_dictionaries(
    {},
    optional={
        "summary": texts | words | json_values,
        "details": texts | text_maps | json_values,
        "dedup": texts | words | st.integers(),
        "action": st.sampled_from(["close", "CLOSE", "resolved"]) | texts,
    },
)
transitions = (
    st.sampled_from(["Triggered", "Re-Triggered", "Recovered", "Warn", "No Data", "Renotify"]) | texts
)
datadog_custom = st.fixed_dictionaries(
    {"alert_id": texts | st.integers(min_value=0, max_value=10**12), "transition": transitions},
    optional={
        "title": texts,
        "message": texts | st.text(st.sampled_from("[]()@%- \n"), max_size=200),
        "tags": texts | st.lists(texts, max_size=5),
        "scope": texts,
        "priority": texts,
        "link": texts,
        "cycle_key": texts,
        "date": times,
    },
)
datadog_default = st.fixed_dictionaries(
    {
        "title": st.builds(
            lambda state, on, rest: f"[P1] [{state} on {{{on}}}] {rest}", transitions, texts, texts
        )
    },
    optional={"body": texts, "id": texts, "date": times, "link": texts},
)
