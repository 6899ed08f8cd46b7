"""What the lead sees: the overview, the message log and its CSV, alert timelines, rules, the phone panel."""

from __future__ import annotations

import csv
import html
import io
import re
from datetime import UTC, datetime

import pytest

import alerting
from core import db
from dashboard import log
from inbound import audit
from incidents import records
from incidents.rules import parse_rules
from outbox import queue
from outbox.queue import Kind
from tests.support.alerts import WEBHOOK_TOKEN, fire
from tests.support.apps import app_with, with_settings
from tests.support.dashboard import login, post_form
from tests.support.monitors import Dial
from tests.support.paths import PAYLOADS
from tests.support.phones import ADMIN, RESPONDER, VIEWER, Phone

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>&amp;'


def test_a_text_with_html_and_script_is_shown_as_plain_text(lead, phone):
    phone.text(HOSTILE)
    page = lead.get("/dashboard/messages").data.decode()
    assert "<script>" not in page and "<img" not in page
    assert (
        "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;&amp;amp;" in page
    )


def test_an_alert_label_and_annotation_are_escaped_on_its_page_and_the_overview(lead):
    alert_id = fire(lead, "DiskFull", hosts=('"><script>x()</script>',), summary=HOSTILE)
    for path in (f"/dashboard/alerts/{alert_id}", "/dashboard/", "/dashboard/alerts"):
        page = lead.get(path).data.decode()
        assert "<script>" not in page and "<img" not in page, path


def test_the_overview_shows_open_alerts_who_was_paged_and_who_acked(lead, services):
    alert_id = fire(lead, "HighLatency", summary="p99 over 2s")
    with services.engine.begin() as conn:
        records.ack(conn, alert_id, RESPONDER, db.now())
    page = lead.get("/dashboard/").data.decode()
    assert "HighLatency" in page and "p99 over 2s" in page
    assert f"{ADMIN}" in page  # paged (ALERT_RECIPIENTS is empty: responders and admins)
    assert f"{RESPONDER} (" in page  # acked by
    assert page.count("<svg") == 3


def test_the_overview_counts_this_months_segments_and_their_cost(lead, phone, services):
    phone.text("help")
    with services.engine.begin() as conn:
        row = queue.enqueue(conn, ADMIN, "a page", Kind.ALERT, services.settings)
        conn.execute(queue.outbox.update().where(queue.outbox.c.id == row).values(status="delivered"))
    page = lead.get("/dashboard/").data.decode()
    # One text in, its one-segment reply and one delivered page: 3 segments at the default price.
    assert "1 texts in, 2 segments out" in page
    assert f"${3 * services.settings.sms_segment_price:.2f}" in page
    assert "100.0% of texts" in page


def test_an_alert_page_tells_its_story_in_order(lead, services):
    alert_id = fire(lead, "QueueStuck", summary="jobs piling up")
    with services.engine.begin() as conn:
        sent = conn.execute(queue.outbox.select().where(queue.outbox.c.alert_id == alert_id)).first()
        now = db.now()
        conn.execute(
            queue.outbox.update()
            .where(queue.outbox.c.id == sent.id)
            .values(
                status="delivered", sent_at=now + 1, delivery_status="delivered", delivery_updated_at=now + 2
            )
        )
        records.ack(conn, alert_id, RESPONDER, now + 3)
        records.close(conn, alert_id, at=now + 4, by=RESPONDER)
    page = lead.get(f"/dashboard/alerts/{alert_id}").data.decode()
    timeline = page[page.index('<ol id="timeline">') :]
    steps = [
        "received from",
        "opened as",
        "alert queued for",
        "alert sent to",
        ": delivered",
        "acked by",
        "resolved by",
    ]
    positions = [timeline.index(step) for step in steps]
    assert positions == sorted(positions)


def test_an_unknown_alert_is_a_plain_404(lead):
    assert lead.get("/dashboard/alerts/999999").status_code == 404
    assert lead.get("/dashboard/alerts/99999999999999999999999").status_code == 404


def _log(lead, **args) -> list[dict]:
    response = lead.get("/dashboard/messages.csv", query_string=args)
    assert response.status_code == 200, response.data
    return list(csv.DictReader(io.StringIO(response.data.decode())))


def test_the_log_filters_by_number_command_outcome_and_direction(lead, client, services):
    Phone(client, ADMIN).text("help")
    Phone(client, RESPONDER).text("frobnicate")
    Phone(client, VIEWER).text("help")
    assert {r["number"] for r in _log(lead, number=RESPONDER)} == {RESPONDER}
    assert {r["number"] for r in _log(lead, command="help")} == {ADMIN, VIEWER}
    assert [r["number"] for r in _log(lead, outcome="error")] == [RESPONDER]
    assert _log(lead, direction="out") == []
    assert len(_log(lead, direction="in")) == 3
    page = lead.get("/dashboard/messages", query_string={"number": RESPONDER}).data.decode()
    assert "frobnicate" in page and VIEWER not in page.split("<tbody>")[1]


def test_the_log_shows_when_a_text_was_sent_as_well_as_when_it_was_queued(lead, services):
    queued = db.now() - 600
    with services.engine.begin() as conn:
        text_id = queue.enqueue(conn, RESPONDER, "FIRING DiskFull #3", Kind.ALERT, services.settings)
        conn.execute(
            queue.outbox.update()
            .where(queue.outbox.c.id == text_id)
            .values(created_at=queued, status="sent", sent_at=queued + 95)
        )
    page = lead.get("/dashboard/messages").data.decode()
    [row] = [row for row in page.split("<tr") if "FIRING DiskFull #3" in row]
    assert log.when(queued) in row and log.when(queued + 95) in row
    [logged] = _log(lead, direction="out")
    assert (logged["time"], logged["sent"]) == (log.when(queued), log.when(queued + 95))


def test_the_log_filters_by_date_range_in_utc(lead, phone):
    phone.text("help")
    day = datetime.fromtimestamp(db.now(), UTC).date().isoformat()
    assert len(_log(lead, **{"from": day, "to": day})) == 1
    assert _log(lead, **{"from": "2001-01-01", "to": "2001-01-31"}) == []


def test_pages_of_the_log_follow_each_other_without_gaps_or_repeats(lead, services):
    # Many rows at the same instant, in and out, is where a cursor on time alone goes wrong.
    at = db.now()
    with services.engine.begin() as conn:
        for i in range(70):
            row = queue.enqueue(conn, ADMIN, f"out {i}", Kind.NOTICE, services.settings)
            conn.execute(queue.outbox.update().where(queue.outbox.c.id == row).values(created_at=at))
    with services.engine.begin() as conn:
        for i in range(70):
            row = audit.start(conn, ADMIN, audit.Outcome.OK, body=f"in {i}")
            conn.execute(audit.messages.update().where(audit.messages.c.id == row).values(received_at=at))
    seen, url, pages = [], "/dashboard/messages", 0
    while url:
        page = lead.get(url).data.decode()
        seen += [cell.split("<", 1)[0] for cell in page.split('<td class="body">')[1::2]]
        older = re.search(r'<a href="([^"]+)" id="older">', page)
        url = html.unescape(older.group(1)) if older else None
        pages += 1
    assert pages == 3
    assert sorted(seen) == sorted([f"out {i}" for i in range(70)] + [f"in {i}" for i in range(70)])


@pytest.mark.parametrize(
    "args",
    [
        {"number": "'; drop table messages; --"},
        {"number": "+1" * 40},
        {"command": "<script>"},
        {"outcome": "x" * 500},
        {"direction": "sideways"},
        {"from": "2026-13-45"},
        {"from": "yesterday"},
        {"to": "9999999999-01-01"},
        {"from": "2026-02-01", "to": "2026-01-01"},
        {"before": "not-a-cursor"},
        {"before": "1e308-i-1"},
        {"before": "1.5-x-99999999999999999999999"},
        {"before": "1.5-i-4294967296"},
        {"number": "\x00\n"},
    ],
)
def test_bad_filters_get_a_plain_message_never_a_500(lead, args):
    page = lead.get("/dashboard/messages", query_string=args)
    assert page.status_code == 400
    assert b'class="error"' in page.data and b"<script>" not in page.data
    assert lead.get("/dashboard/messages.csv", query_string=args).status_code in (200, 400)


def test_the_csv_export_has_every_matching_row_and_disarms_formulas(lead, phone):
    phone.text('=HYPERLINK("http://evil")')
    phone.text("help")
    response = lead.get("/dashboard/messages.csv")
    assert response.mimetype == "text/csv" and "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.data.decode())))
    assert len(rows) == 2
    assert {r["body"] for r in rows} == {"help", '\'=HYPERLINK("http://evil")'}
    assert rows[0]["number"] == ADMIN


def test_a_viewer_of_the_dashboard_sees_masked_numbers_and_no_phone_panel(viewer_app):
    client = viewer_app.test_client()
    Phone(client, ADMIN).text(f"call {RESPONDER} please")
    assert login(client).status_code == 302
    page = client.get("/dashboard/messages").data.decode()
    assert ADMIN not in page and RESPONDER not in page and "+1555***0100" in page
    exported = client.get("/dashboard/messages.csv").data.decode()
    assert ADMIN not in exported and RESPONDER not in exported
    assert client.get("/dashboard/phone").status_code == 403
    alert_id = fire(client, "Paged")
    with viewer_app.extensions["operator"].engine.begin() as conn:
        records.ack(conn, alert_id, RESPONDER, db.now())
    for path in ("/dashboard/", "/dashboard/alerts", f"/dashboard/alerts/{alert_id}"):
        page = client.get(path).data.decode()
        assert ADMIN not in page and RESPONDER not in page, path
        assert "+1555***0101" in page, path
    assert b"Phone</a>" not in client.get("/dashboard/").data


def test_the_phone_panel_answers_through_the_sms_pipeline_and_stores_the_text(lead):
    response = post_form(lead, "/dashboard/phone", number=ADMIN, body="help")
    assert response.status_code == 200
    reply = response.data.decode().split('<section id="reply">')[1]
    assert "status" in reply.lower()
    rows = _log(lead, number=ADMIN)
    assert [(r["body"], r["command"], r["outcome"]) for r in rows] == [("help", "help", "ok")]


@pytest.mark.parametrize("number", ["+15555550199", "", "<script>"])
def test_the_phone_panel_only_texts_as_an_authorized_number(lead, number):
    response = post_form(lead, "/dashboard/phone", number=number, body="help")
    assert response.status_code == 400
    assert _log(lead) == []


def test_the_phone_panel_refuses_a_post_without_its_token(lead):
    response = lead.post("/dashboard/phone", data={"number": ADMIN, "body": "help"})
    assert response.status_code == 400
    assert _log(lead) == []


def test_rules_show_their_state_value_and_last_evaluation(lead, services):
    with services.engine.begin() as conn:
        conn.execute(
            alerting.rule_states.insert().values(
                rule="<b>cpu</b>", state="firing", value=97.5, evaluated_at=db.now(), next_eval_at=0.0
            )
        )
    page = lead.get("/dashboard/rules").data.decode()
    assert "&lt;b&gt;cpu&lt;/b&gt;" in page and "firing" in page and "97.5" in page


@pytest.mark.parametrize(
    "source, firing, resolved",
    [("alertmanager", "alertmanager_firing", "alertmanager_resolved"),
     ("datadog", "datadog_custom_triggered", "datadog_custom_recovered")],
)  # fmt: skip
def test_a_sources_resolved_notice_shows_on_the_timeline_as_resolved_by_that_source(
    lead, source, firing, resolved
):
    headers = {"Authorization": f"Bearer {WEBHOOK_TOKEN}"}
    opened = lead.post(f"/webhook/{source}", data=(PAYLOADS / f"{firing}.json").read_bytes(), headers=headers,
                       content_type="application/json")  # fmt: skip
    alert_id = opened.json["alerts"][0]
    lead.post(f"/webhook/{source}", data=(PAYLOADS / f"{resolved}.json").read_bytes(), headers=headers,
              content_type="application/json")  # fmt: skip
    page = html.unescape(lead.get(f"/dashboard/alerts/{alert_id}").data.decode())
    timeline = page[page.index('<ol id="timeline">') :].split("</ol>")[0]
    assert f"resolved by {source}" in timeline and "deduplicated" not in timeline
    with lead.application.extensions["operator"].engine.connect() as conn:
        keys = [key for key, _ in records.events(conn, alert_id)]
    assert len(keys) >= 2 and all(key in timeline for key in keys)


def _rule_row(client, name: str) -> str:
    page = html.unescape(client.get("/dashboard/rules").data.decode())
    return page[page.index(f"<tr><td>{name}</td>") :].split("</tr>")[0]


def _cpu_rule(services, dial: Dial) -> alerting.Evaluator:
    services.monitors["dial"] = dial
    rule = {"name": "high_cpu", "monitor": "dial", "query": "cpu", "op": ">", "threshold": 80,
            "recipients": [ADMIN], "message": "CPU {value}%"}  # fmt: skip
    return alerting.Evaluator(services, parse_rules([rule], services.settings, services.monitors), "w")


def test_a_rules_next_evaluation_is_one_interval_after_its_last(lead, services):
    now = db.now()
    _cpu_rule(services, Dial(40.0)).tick(now)
    row = _rule_row(lead, "high_cpu")
    interval = services.settings.alert_interval
    assert log.when(now) in row and log.when(now + interval) in row and interval > 1


def test_a_rule_still_breaching_after_its_alert_was_resolved_by_hand_says_so(lead, services):
    evaluator, now = _cpu_rule(services, Dial(97.0)), db.now()
    evaluator.tick(now)
    with services.engine.begin() as conn:
        [alert] = records.firing(conn)
        records.close(conn, alert.id, by=ADMIN)
    evaluator.tick(now + services.settings.alert_interval)
    row = _rule_row(lead, "high_cpu")
    assert "still breach" in row and f"#{alert.id} was resolved by hand" in row


@pytest.mark.parametrize(
    "link, linked",
    [("javascript:alert(document.cookie)", False), (" JaVaScRiPt:x()", False), ("data:text/html,<b>", False),
     ("https://grafana.example/d/1?x=<y>", True)],
)  # fmt: skip
def test_an_alert_link_is_a_link_only_when_it_is_a_web_address(lead, link, linked):
    body = {
        "alert_id": "7",
        "cycle_key": "c7",
        "transition": "Triggered",
        "title": "Queue depth",
        "link": link,
    }
    response = lead.post("/webhook/datadog", json=body, headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}"})
    alert_id = response.json["alerts"][0]
    page = lead.get(f"/dashboard/alerts/{alert_id}").data.decode()
    assert ("source link</a>" in page) is linked
    assert 'href="javascript' not in page.lower() and 'href="data:' not in page.lower()


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf"), 1e300])
def test_a_rule_with_absurd_stored_numbers_still_shows(lead, services, value):
    with services.engine.begin() as conn:
        conn.execute(
            alerting.rule_states.insert().values(
                rule="weird", state="ok", value=value, since=value, evaluated_at=value, next_eval_at=0.0
            )
        )
    page = lead.get("/dashboard/rules")
    assert page.status_code == 200 and b"weird" in page.data


def test_rules_of_the_file_show_before_their_first_evaluation(settings):
    rule = {"name": "error_rate", "monitor": "prometheus", "query": "sum(rate(x[5m]))", "op": ">",
            "threshold": 0.05, "for": "5m", "message": "5xx {value}"}  # fmt: skip
    changed = with_settings(settings, prometheus_url="http://127.0.0.1:9", file={"rules": [rule]})
    with app_with(changed) as app:
        client = app.test_client()
        login(client)
        page = client.get("/dashboard/rules").data.decode()
    assert "error_rate" in page and "sum(rate(x[5m])) &gt; 0.05 for 300 s" in page
    assert "not evaluated yet" in page
