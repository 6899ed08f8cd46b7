"""A viewer of the dashboard never sees a whole phone number: not on any page, not in the export,
however the number is written, and no filter tells a viewer whether a hidden number is there."""

from __future__ import annotations

import html
import re
from collections import deque

import alerting
from core import db
from tests.support.alerts import WEBHOOK_TOKEN
from tests.support.dashboard import login
from tests.support.phones import ADMIN, RESPONDER, VIEWER, Phone

# The same kind of number, written every way people (and senders) write them.
WRITTEN = ["1.555.555.0177", "+1 (555) 555-0178", "555 555 0179", "+15555550180", "1-555-555-0181",
           "(555) 555-0182", "+1.555.555.0183", "555.555.0184"]  # fmt: skip
HIDDEN = [re.sub(r"\D", "", n)[-10:] for n in [ADMIN, RESPONDER, VIEWER, *WRITTEN]]
_LINK = re.compile(r'href="(/dashboard[^"#]*)"')


def leaks(text: str) -> list[str]:
    """The hidden numbers that can be read in `text`, whatever separates their digits."""
    flat = re.sub(r"[\s.()\-/+\u00a0]", "", html.unescape(text))
    return [n for n in HIDDEN if n in flat]


def fire_with_numbers(client) -> int:
    """An Alertmanager alert carrying numbers in its name, labels, annotations, fingerprint and link."""
    name = f"Callback {WRITTEN[0]}"
    labels = {"alertname": name, "severity": "page", "caller": WRITTEN[1], f"line {WRITTEN[2]}": "yes"}
    annotations = {"summary": f"customer {WRITTEN[3]} cannot reach {WRITTEN[4]}", "runbook": WRITTEN[5]}
    body = {
        "version": "4",
        "groupKey": f'{{}}:{{alertname="{name}"}}',
        "status": "firing",
        "truncatedAlerts": 0,
        "commonLabels": labels,
        "commonAnnotations": annotations,
        "externalURL": "http://alertmanager.local",
        "alerts": [
            {
                "status": "firing",
                "labels": labels,
                "annotations": annotations,
                "startsAt": "2026-01-01T00:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": f"http://prometheus.local/graph?caller={WRITTEN[6]}",
                "fingerprint": f"fp-{WRITTEN[7]}",
            }
        ],
    }
    response = client.post(
        "/webhook/alertmanager", json=body, headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}"}
    )
    assert response.status_code == 200, response.json
    return response.json["alerts"][0]


def walk(client, start: list[str]) -> dict[str, str]:
    """Every dashboard page reachable from `start` by its links (and forms' GET targets), as text."""
    seen: dict[str, str] = {}
    todo = deque(start)
    while todo and len(seen) < 60:
        path = todo.popleft()
        if path in seen or "/logout" in path or "/sessions/" in path:
            continue
        response = client.get(path)
        assert response.status_code in (200, 400, 403, 404), (path, response.status_code)
        seen[path] = response.data.decode()
        todo.extend(html.unescape(link) for link in _LINK.findall(seen[path]))
    return seen


def test_a_viewer_sees_no_whole_number_on_any_page_or_in_the_export(viewer_app):
    client = viewer_app.test_client()
    admin, responder = Phone(client, ADMIN), Phone(client, RESPONDER)
    alert_id = fire_with_numbers(client)
    admin.text(f"call {WRITTEN[0]} or {WRITTEN[1]}; {RESPONDER} knows")
    responder.text(f"ack {alert_id}")
    Phone(client, VIEWER).text(f"who is {WRITTEN[2]}")
    admin.text(f"resolve {alert_id}")
    with viewer_app.extensions["operator"].engine.begin() as conn:
        conn.execute(
            alerting.rule_states.insert().values(
                rule=f"calls to {WRITTEN[3]}",
                state="error",
                value=1.0,
                evaluated_at=db.now(),
                next_eval_at=0.0,
                failures=2,
                last_error=f"no answer from {WRITTEN[4]}",
            )  # fmt: skip
        )
    assert login(client).status_code == 302
    pages = walk(
        client,
        ["/dashboard/", "/dashboard/messages", "/dashboard/messages?direction=out",
         "/dashboard/messages.csv", "/dashboard/alerts", f"/dashboard/alerts/{alert_id}",
         "/dashboard/rules", "/dashboard/phone", "/dashboard/login"],
    )  # fmt: skip
    assert f"/dashboard/alerts/{alert_id}" in pages and len(pages) >= 9
    for path in ("/dashboard/messages.csv", f"/dashboard/alerts/{alert_id}", "/dashboard/rules"):
        assert "***" in pages[path], path
    for path, text in pages.items():
        assert not leaks(text), (path, leaks(text))


def test_an_admin_still_sees_whole_numbers(app):
    client = app.test_client()
    Phone(client, ADMIN).text(f"call {WRITTEN[0]}")
    assert login(client).status_code == 302
    assert WRITTEN[0] in client.get("/dashboard/messages").data.decode()
    assert ADMIN in client.get("/dashboard/messages.csv").data.decode()


def test_a_viewer_cannot_test_a_hidden_number_with_the_log_filter(viewer_app):
    client = viewer_app.test_client()
    Phone(client, ADMIN).text("help")
    assert login(client).status_code == 302
    answers = set()
    for guess in (ADMIN, "+15555550142", "+1555***0100", "5555550100"):
        for path in ("/dashboard/messages", "/dashboard/messages.csv"):
            response = client.get(path, query_string={"number": guess})
            assert response.status_code == 400, (path, guess)
            assert "number" in response.data.decode()
            answers.add((path, response.data))
    assert len(answers) == 2  # one answer per page, whatever was guessed
