"""What the dashboard shows of the other packages: on-call teams, the resolver's reading, calls."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

from tests.support.apps import app_with, with_settings
from tests.support.dashboard import login
from tests.support.oncall import ALICE, BOB, payments_and_infra


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
    assert response.status_code == 200, response.data
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
