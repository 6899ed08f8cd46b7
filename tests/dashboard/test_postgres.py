"""The dashboard on PostgreSQL, where types are strict: a hostile cursor or id is a plain answer there too."""

from __future__ import annotations

import csv
import io

import pytest

from app import create_app
from tests.support.apps import with_settings
from tests.support.dashboard import login
from tests.support.phones import ADMIN, Phone
from tests.support.servers import fresh_postgres_database


@pytest.fixture
def pg_lead(settings):
    url, drop = fresh_postgres_database()
    app = create_app(with_settings(settings, database_url=url))
    try:
        client = app.test_client()
        assert login(client).status_code == 302
        yield client
    finally:
        app.extensions["operator"].close()
        drop()


def test_every_page_answers_on_postgresql(pg_lead):
    Phone(pg_lead, ADMIN).text("help")
    for path in [
        "/dashboard/",
        "/dashboard/messages",
        "/dashboard/alerts",
        "/dashboard/rules",
        "/dashboard/phone",
    ]:
        assert pg_lead.get(path).status_code == 200, path
    rows = list(csv.DictReader(io.StringIO(pg_lead.get("/dashboard/messages.csv").data.decode())))
    assert [r["body"] for r in rows] == ["help"]


@pytest.mark.parametrize(
    "path, status",
    [
        ("/dashboard/messages?before=1.5-i-2147483648", 400),
        ("/dashboard/messages?before=999999999999.99999999999999999-o-2147483647", 200),
        ("/dashboard/messages?to=9999-12-31", 200),
        ("/dashboard/alerts?before=9999999999", 200),
        ("/dashboard/alerts/2147483648", 404),
        ("/dashboard/messages?number=%2B999999999999999", 200),
    ],
)
def test_values_past_postgresqls_integers_are_answered_plainly(pg_lead, path, status):
    assert pg_lead.get(path).status_code == status
