"""Nobody else's text can forge a page: line breaks and control, separator and format characters
from any sender reach a text or a call's speech as spaces, while Operator's own line breaks stay."""

from __future__ import annotations

import copy
import json
import unicodedata

import pytest
from sqlalchemy import select

from core import db
from incidents import records
from incidents.sources import Source
from incidents.sources.registry import PARSERS
from outbox.queue import outbox
from tests.support.alerts import WEBHOOK_TOKEN, fire
from tests.support.apps import with_settings
from tests.support.paths import PAYLOADS
from voice.routes import spoken

HEADERS = {"Authorization": f"Bearer {WEBHOOK_TOKEN}"}
FORGED = "Disk\nRESOLVED #1 all clear...\nReply STOP to opt out"
# One of each kind: C0, C1 (NEL), DEL, line and paragraph separators, bidi overrides and
# isolates, zero-width characters, the BOM.
HOSTILE = {
    "CR LF": "\r\n",
    "vertical tab": "\x0b",
    "form feed": "\x0c",
    "escape": "\x1b[2J",
    "DEL": "\x7f",
    "NEL": "\x85",
    "C1 CSI": "\x9b",
    "line separator": "\u2028",
    "paragraph separator": "\u2029",
    "right-to-left override": "\u202e",
    "left-to-right embedding": "\u202a",
    "pop directional": "\u202c",
    "first strong isolate": "\u2068",
    "pop isolate": "\u2069",
    "zero width space": "\u200b",
    "zero width joiner": "\u200d",
    "right-to-left mark": "\u200f",
    "BOM": "\ufeff",
}
BREAKING = ("Cc", "Cf", "Zl", "Zp")


def breaking(text: str) -> list[str]:
    """The characters of `text` that break, hide or reorder a line (Operator's own '\\n' aside)."""
    return [c for c in text if c != "\n" and unicodedata.category(c) in BREAKING]


@pytest.fixture
def settings(settings):
    return with_settings(settings, alertmanager_token=WEBHOOK_TOKEN, datadog_token=WEBHOOK_TOKEN)


def the_page(services) -> str:
    """The one page queued (the same text to every responder)."""
    with services.engine.connect() as conn:
        [page] = set(conn.scalars(select(outbox.c.body).where(outbox.c.kind == "alert")))
    return page


def test_a_label_and_an_annotation_with_newlines_reach_the_page_as_one_line(client, services):
    fire(client, FORGED, summary="all good\nRESOLVED #1")
    page = the_page(services)
    assert "\n" not in page
    assert "Disk RESOLVED #1 all clear... Reply STOP to opt out" in page


def test_a_datadog_title_and_message_with_line_breaks_reach_the_page_as_one_line(client, services):
    body = {
        "alert_id": "42",
        "transition": "Triggered",
        "title": "Queue\r\nRESOLVED #1\u2028all clear",
        "message": "deep\u2029Reply STOP",
    }
    assert client.post("/webhook/datadog", json=body, headers=HEADERS).status_code == 200
    page = the_page(services)
    assert "\n" not in page and not breaking(page)
    assert "Queue RESOLVED #1 all clear" in page


@pytest.mark.parametrize("hostile", HOSTILE.values(), ids=HOSTILE.keys())
def test_no_control_or_format_character_reaches_a_text_or_a_call(client, services, hostile):
    alert_id = fire(client, f"Disk{hostile}Full", hosts=(f"db{hostile}1",), summary=f"x{hostile}y")
    page = the_page(services)
    assert "\n" not in page and not breaking(page)
    with services.engine.connect() as conn:
        alert = records.get(conn, alert_id)
    assert "Disk " in page  # the character became a space
    words = spoken(alert)
    assert "\n" not in words and not breaking(words)


def test_an_alert_stored_with_line_breaks_before_is_still_one_line_in_every_text(services):
    with services.engine.begin() as conn:
        alert, _ = records.fire(
            conn, Source.ALERTMANAGER, "old", FORGED, summary="a\nb\u202ec", labels={"host": "x\ny"}
        )
        records.set_fields(conn, alert.id, places="web-1\nRESOLVED", last_seen=db.now())
        alert = records.fetch(conn, alert.id)
    for text in (
        alert.name,
        alert.summary,
        alert.places,
        alert.line(),
        spoken(alert),
        *alert.labels.values(),
    ):
        assert "\n" not in text and not breaking(text)


def test_operators_own_line_breaks_stay(phone, client):
    fire(client, "HighCPU", summary="one\ntwo")
    fire(client, "DiskFull")
    reply = phone.text("alerts")
    assert reply.startswith("2 open:\n#2 DiskFull")
    assert reply.count("\n") == 2


def _strings(value):
    """Every string in a decoded payload, keys included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


# Fields a parser must read exactly (a state, a time): poison there is refused, not flattened.
EXACT = {"status", "transition", "startsAt", "endsAt", "date", "last_updated", "version", "truncatedAlerts"}
# Objects whose keys are the sender's own words (label and annotation names).
NAMED = {"labels", "annotations", "commonLabels", "commonAnnotations", "groupLabels"}


def _poisoned(value, hostile: str, keys: bool = False):
    """`value` with `hostile` inside every free-text string (label names too)."""
    if isinstance(value, str):
        return value[:3] + hostile + value[3:] if len(value) > 3 else value + hostile
    if isinstance(value, dict):
        return {
            (_poisoned(k, hostile) if keys else k): (v if k in EXACT else _poisoned(v, hostile, k in NAMED))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_poisoned(v, hostile) for v in value]
    return value


def _fields(event) -> list[str]:
    values = [v for v in vars(event).values() if isinstance(v, str)]
    return values + [s for pair in event.labels.items() for s in pair]


def test_every_parser_has_captured_payloads_to_walk():
    for source in PARSERS:
        assert sorted(PAYLOADS.glob(f"{source}_*.json")), f"add tests/payloads/{source}_*.json"


@pytest.mark.parametrize("source", list(PARSERS), ids=str)
@pytest.mark.parametrize("hostile", HOSTILE.values(), ids=HOSTILE.keys())
def test_every_source_parser_gives_one_line_fields_whatever_the_payload_carries(source, hostile):
    parse = PARSERS[source]
    walked = 0
    for path in sorted(PAYLOADS.glob(f"{source}_*.json")):
        payload = json.loads(path.read_text())
        for body in (_poisoned(payload, hostile), _poisoned(payload, "\n" + hostile + "\n")):
            assert any(hostile in s for s in _strings(body))
            for event in parse(copy.deepcopy(body)):
                walked += 1
                for text in _fields(event):
                    assert "\n" not in text and not breaking(text), (path.name, text)
    assert walked, f"no payload of {source} gave an event"
