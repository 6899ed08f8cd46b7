"""The dashboard writes its times in TIMEZONE and says which zone that is; it names people as texts do."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, timedelta

import pytest

from core import db
from incidents import records
from tests.support.alerts import fire
from tests.support.apps import app_with, with_settings
from tests.support.dashboard import login
from tests.support.oncall import ALICE, payments_and_infra
from tests.support.phones import Phone

STAMP = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?: (?P<zone>[A-Z]{3,5}))?")


def zones(page: str) -> set[str | None]:
    """The zone written after each full time on the page (None for a time without one)."""
    return {m.group("zone") for m in STAMP.finditer(page)}


def test_by_default_every_time_on_the_dashboard_says_utc(lead, phone):
    alert_id = fire(lead, "HighCPU")
    phone.text("help")
    for path in ("/dashboard/", "/dashboard/alerts", f"/dashboard/alerts/{alert_id}", "/dashboard/messages"):
        page = lead.get(path).data.decode()
        assert zones(page) <= {"UTC"}, path
    assert zones(lead.get("/dashboard/messages").data.decode()) == {"UTC"}


@pytest.mark.parametrize("path", ["/dashboard/alerts", "/dashboard/alerts/1", "/dashboard/messages"])
def test_with_a_timezone_the_dashboard_writes_its_times_there_and_names_it(settings, path):
    with app_with(with_settings(settings, timezone="Europe/Berlin")) as app:
        client = app.test_client()
        login(client)
        fire(client, "HighCPU")
        Phone(client).text("help")
        page = client.get(path).data.decode()
        assert zones(page) == {"CET"}, page
        assert "(UTC)" not in page


def test_the_csv_export_writes_times_with_their_zone(settings):
    with app_with(with_settings(settings, timezone="America/New_York")) as app:
        client = app.test_client()
        login(client)
        Phone(client).text("help")
        rows = list(csv.reader(io.StringIO(client.get("/dashboard/messages.csv").data.decode())))
        assert rows[1][0].endswith(" EST") and zones(rows[1][0]) == {"EST"}


def test_the_overview_names_the_on_call_and_whoever_acked_with_their_number(settings):
    start = (datetime.now(UTC) - timedelta(hours=1)).replace(microsecond=0).isoformat()
    file = payments_and_infra(start=start)
    with app_with(with_settings(settings, file=file, timezone="Europe/Berlin")) as app:
        client = app.test_client()
        login(client)
        alert_id = fire(client, "HighCPU", labels={"team": "payments"})
        with app.extensions["operator"].engine.begin() as conn:
            records.ack(conn, alert_id, ALICE, db.now())
        page = client.get("/dashboard/").data.decode()
        assert f"Alice ({ALICE}) (" in page  # acked by, then how long ago
        assert "(UTC)" not in page and zones(page) <= {"CET"}
        timeline = client.get(f"/dashboard/alerts/{alert_id}").data.decode()
        assert f"acked by Alice ({ALICE})" in timeline
