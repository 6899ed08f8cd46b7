from __future__ import annotations

import re
import sqlite3

import pytest

from app import create_app
from tests.support.apps import app_with, with_settings
from tests.support.fakes.custom_api import TOKEN, FakeCustomApi
from tests.support.fakes.newrelic import API_KEY, FakeNewRelic
from tests.support.fakes.prometheus import FakePrometheus
from tests.support.phones import Phone


@pytest.mark.parametrize(
    "body, expected",
    [
        ("db", "Not configured: set MONITOR_DB_URL to use this."),
        ("apps", "Not configured: set NEWRELIC_API_KEY to use this."),
        ("nr errors", "Not configured: set NEWRELIC_API_KEY to use this."),
        ("api", "Not configured: set CUSTOM_API_URL to use this."),
        ("logs error", "Not configured: set LOKI_URL or LOG_FILES to search logs."),
    ],
)
def test_an_unconfigured_backend_says_which_variable_to_set(phone, body, expected):
    assert phone.text(body) == expected


@pytest.mark.parametrize("body", ["metrics cpu", "how's the CPU looking?", "CPU?", "metrics for cpu please"])
def test_without_prometheus_cpu_questions_read_this_host(phone, body):
    assert phone.text(body).startswith("sys cpu ")


def test_metrics_without_prometheus_lists_the_host_readings(phone):
    assert (
        phone.text("metrics") == "Metrics (this host; set PROMETHEUS_URL for more): cpu, memory, disk, load."
    )


@pytest.fixture
def many_errors():
    """Prometheus with 5xx rates for more services than one text lists."""
    series = [({"job": f"checkout-service-{i}"}, 10.0 - i / 10) for i in range(40)]
    with FakePrometheus(series=series) as fake:
        yield fake


@pytest.mark.parametrize("max_segments", [1, 2])
def test_what_to_set_stays_on_the_first_page_of_a_reply_continued_by_more(
    settings, many_errors, max_segments
):
    changed = with_settings(settings, prometheus_url=many_errors.url, sms_max_segments=max_segments)
    with app_with(changed) as app:
        first = Phone(app.test_client()).text("Any errors in the last hour?")
    assert first.endswith("Reply MORE") and "Set LOKI_URL or LOG_FILES to search the logs." in first


@pytest.mark.parametrize("count", [5, 40])
def test_each_more_page_lists_only_series_no_earlier_page_showed(settings, count):
    series = [({"job": f"checkout-service-{i}"}, 10.0 - i / 10) for i in range(count)]
    with (
        FakePrometheus(series=series) as fake,
        app_with(with_settings(settings, prometheus_url=fake.url)) as app,
    ):
        phone = Phone(app.test_client())
        pages = [phone.text("metrics errors")]
        while pages[-1].endswith("Reply MORE"):
            pages.append(phone.text("more"))
    named = [re.findall(r"checkout-service-\d+\b", page) for page in pages]
    everything = [name for names in named for name in names]
    assert len(pages) > 1 and sorted(everything) == sorted(f"checkout-service-{i}" for i in range(count))


def test_help_lists_the_backend_commands(phone):
    reply = phone.text("help")
    for name in ("metrics", "db", "apps", "nr", "api", "logs"):
        assert name in reply


@pytest.fixture
def db_phone(settings, tmp_path):
    path = tmp_path / "shop.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE orders (id INTEGER)")
    app = create_app(with_settings(settings, monitor_db_url=f"sqlite:///{path}"))
    yield Phone(app.test_client())
    app.extensions["operator"].close()


@pytest.mark.parametrize("body", ["db", "DB!", "database", "how is the database?", "any replication lag?"])
def test_database_questions_reach_the_db_command(db_phone, body):
    assert db_phone.text(body).startswith("db up, SQLite ")


def test_apps_and_api_answer_from_their_backends_in_one_segment(settings):
    with FakeNewRelic() as nr, FakeCustomApi() as api:
        changed = with_settings(
            settings,
            newrelic_api_key=API_KEY,
            newrelic_api_url=nr.url,
            custom_api_url=api.url,
            custom_api_token=TOKEN,
        )
        app = create_app(changed)
        try:
            phone = Phone(app.test_client())
            apps = phone.text("show me the apps")
            assert apps.startswith("checkout RED")
            assert phone.text("api").startswith("api ok ")
        finally:
            app.extensions["operator"].close()


def test_a_hostile_metrics_request_from_a_viewer_runs_nothing(phone):
    from tests.support.phones import VIEWER

    reply = phone.text('metrics {__name__=~".+"}', number=VIEWER)
    assert reply.startswith("Metrics (this host")
