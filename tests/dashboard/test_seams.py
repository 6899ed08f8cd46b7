"""What the dashboard shows of the other packages: on-call teams, the resolver's reading, calls."""

from __future__ import annotations

import csv
import html
import io
from datetime import UTC, datetime, timedelta

from core import db
from incidents import records
from oncall import escalation
from outbox import calls
from tests.support.alerts import fire
from tests.support.apps import app_with, with_settings
from tests.support.calls import placed_call, voice
from tests.support.dashboard import login
from tests.support.oncall import ALICE, BOB, payments_and_infra
from tests.support.phones import ADMIN, RESPONDER


def an_hour_ago() -> datetime:
    return (datetime.now(UTC) - timedelta(hours=1)).replace(microsecond=0)


def test_the_overview_shows_each_teams_on_call_until_when_and_who_is_next(settings):
    start = an_hour_ago()
    with app_with(with_settings(settings, file=payments_and_infra(start=start.isoformat()))) as app:
        client = app.test_client()
        assert login(client).status_code == 302
        page = client.get("/dashboard/").data.decode()
    table = page[page.index('<table id="on-call">') :].split("</table>")[0]
    payments = table[table.index("<td>payments</td>") :].split("</tr>")[0]
    until = (start + timedelta(weeks=1)).strftime("%Y-%m-%d %H:%M:%S")
    assert f"Alice ({ALICE})" in payments and until in payments and f"Bob ({BOB})" in payments
    assert "<td>default</td>" in table


def test_the_overview_has_no_on_call_section_without_teams(lead):
    assert 'id="on-call"' not in lead.get("/dashboard/").data.decode()


def _log(client, **args) -> list[dict]:
    response = client.get("/dashboard/messages.csv", query_string=args)
    assert response.status_code in (200, 204), response.data
    return list(csv.DictReader(io.StringIO(response.data.decode())))


def test_the_log_shows_what_each_text_was_read_as_and_how_sure_the_reading_was(lead, phone):
    phone.text("snooze 12 for half an hour")
    phone.text("xyzzy")
    page = lead.get("/dashboard/messages").data.decode()
    assert "snooze 12 30m <small>(1.00)</small>" in page
    rows = _log(lead)
    assert [(r["body"], r["command"], r["canonical"], r["confidence"]) for r in rows] == [
        ("xyzzy", "unknown", "none", "0.00"),
        ("snooze 12 for half an hour", "snooze", "snooze 12 30m", "1.00"),
    ]
    assert [r["canonical"] for r in _log(lead, command="snooze")] == ["snooze 12 30m"]


def test_calls_show_in_the_log_and_the_alert_timeline_with_how_each_went(lead, services):
    alert_id = fire(lead, "DiskFull", summary="disk at 97%")
    acked = placed_call(services, RESPONDER, alert_id, "CA" + "a" * 32)
    voice(lead, calls.ANSWER_PATH, acked, RESPONDER, "CA" + "a" * 32, AnsweredBy="human")
    voice(lead, calls.GATHER_PATH, acked, RESPONDER, "CA" + "a" * 32, Digits="4")
    busy = placed_call(services, ADMIN, alert_id, "CA" + "b" * 32)
    voice(lead, calls.STATUS_PATH, busy, ADMIN, "CA" + "b" * 32, CallStatus="busy")

    rows = {r["number"]: r for r in _log(lead, command="call")}
    assert rows[RESPONDER]["delivery"] == "answered, pressed 4: acked"
    assert rows[ADMIN]["delivery"] == "not reached: busy"
    assert rows[ADMIN]["outcome"] == "undelivered"

    page = lead.get(f"/dashboard/alerts/{alert_id}").data.decode()
    timeline = html.unescape(page[page.index('<ol id="timeline">') :])
    steps = [f"call queued for {RESPONDER}", f"call placed to {RESPONDER}", f"call to {RESPONDER}: answered, pressed 4: acked",
             f"call placed to {ADMIN}", f"call to {ADMIN}: not reached: busy"]  # fmt: skip
    positions = [timeline.index(step) for step in steps]
    assert positions == sorted(positions)
    assert f"acked by {RESPONDER}" in timeline
    assert "voice:call" not in timeline and "deduplicated" not in timeline


def test_a_team_escalation_step_shows_on_the_timeline_as_a_step_not_a_webhook_report(settings):
    policy = [{"after": 0, "notify": "oncall"}, {"after": "5m", "notify": "next"}]
    file = payments_and_infra(start=an_hour_ago().isoformat(), escalation=policy)
    with app_with(with_settings(settings, file=file)) as app:
        client, services = app.test_client(), app.extensions["operator"]
        alert_id = fire(client, "CardDeclines", labels={"team": "payments"})
        with services.engine.begin() as conn:
            records.set_fields(conn, alert_id, opened_at=db.now() - 6 * 60)
        assert escalation.run(services) == 1
        assert login(client).status_code == 302
        page = html.unescape(client.get(f"/dashboard/alerts/{alert_id}").data.decode())
    timeline = page[page.index('<ol id="timeline">') :]
    assert "team escalation step 2" in timeline and f"escalation queued for Bob ({BOB})" in timeline
    assert "deduplicated" not in timeline and "escalation:" not in timeline
