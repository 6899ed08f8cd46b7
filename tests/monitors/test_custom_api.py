from __future__ import annotations

import pytest

from app import create_app
from config import ConfigError
from monitors.custom_api import CustomApiMonitor, dig, parse_endpoints
from tests.support.apps import from_file, with_settings
from tests.support.fakes.custom_api import TOKEN, FakeCustomApi
from tests.support.phones import Phone

CONFIG = """
api:
  health:
    path: /health
    fields: [status, version, checks.db]
  orders:
    path: /stats/orders
    fields: {queue: queue.depth, oldest: queue.oldest_seconds, failed: failed_last_hour}
"""


@pytest.fixture
def fake():
    with FakeCustomApi() as server:
        yield server


@pytest.fixture
def endpoints(tmp_path):
    import yaml

    return parse_endpoints(yaml.safe_load(CONFIG)["api"])


@pytest.fixture
def api_phone(fake, settings, tmp_path):
    config = tmp_path / "operator.yml"
    config.write_text(CONFIG)
    app = create_app(
        with_settings(settings, custom_api_url=fake.url, custom_api_token=TOKEN, **from_file(config))
    )
    yield Phone(app.test_client())
    app.extensions["operator"].close()


def test_the_status_line_shows_latency_of_the_first_endpoint(fake, endpoints):
    result = CustomApiMonitor(fake.url, TOKEN, endpoints=endpoints).check()
    assert result.ok and result.text.startswith("ok ") and result.text.endswith("ms")
    assert fake.requests[-1].path == "/health"
    assert fake.requests[-1].headers["authorization"] == f"Bearer {TOKEN}"


def test_api_with_an_endpoint_shows_its_fields(api_phone):
    reply = api_phone.text("api orders")
    assert reply.startswith("api orders ok ")
    assert reply.endswith("queue 17, oldest 42.5, failed 3")


def test_api_alone_shows_the_first_endpoint_and_names_the_others(api_phone):
    reply = api_phone.text("api")
    assert "status ok, version 2.4.1, checks.db true" in reply
    assert reply.endswith("(also: orders)")


def test_an_endpoint_name_in_a_sentence_is_enough(api_phone):
    assert api_phone.text("how are the orders?").startswith("api orders ok")


def test_unknown_endpoints_are_never_requested(api_phone, fake):
    reply = api_phone.text("api ../../admin")
    assert "No endpoint" in reply and "health, orders" in reply
    assert all(r.path in ("/health", "/stats/orders") for r in fake.requests)


def test_a_refused_token_says_auth_refused(fake, endpoints):
    result = CustomApiMonitor(fake.url, "wrong", endpoints=endpoints).check()
    assert not result.ok and result.error == "auth refused (HTTP 401)" and result.permanent


def test_a_server_error_shows_the_status_and_message(fake, endpoints):
    fake.routes["/health"] = (503, {"error": {"message": "database pool exhausted"}})
    result = CustomApiMonitor(fake.url, TOKEN, endpoints=endpoints).check()
    assert result.error == "HTTP 503: database pool exhausted"


def test_value_reads_an_endpoint_field_for_rules(fake, endpoints):
    monitor = CustomApiMonitor(fake.url, TOKEN, endpoints=endpoints)
    assert monitor.value("orders.queue").data["value"] == 17.0
    assert monitor.value("orders.queue.oldest_seconds").data["value"] == 42.5
    assert monitor.value("health.checks.db").data["value"] == 1.0
    assert monitor.value("orders.missing").data["value"] is None
    assert not monitor.value("health.status").ok


def test_without_endpoints_the_base_url_is_checked(fake):
    assert CustomApiMonitor(fake.url, TOKEN).check().ok
    assert fake.requests[-1].path == "/"


@pytest.mark.parametrize(
    "body, path, expected",
    [({"a": {"b": [1, {"c": 2}]}}, "a.b.1.c", 2), ({"a": [5, 6]}, "a.-1", 6), ({"a": True}, "a", True)],
)
def test_dig_follows_dotted_paths(body, path, expected):
    assert dig(body, path) == expected


@pytest.mark.parametrize(
    "section, problem",
    [
        (["/health"], "must map"),
        ({"health": {"path": "health"}}, "path starting with /"),
        ({"health": {"path": "/h", "fields": "status"}}, "fields"),
        ({"health": {"path": "/h", "method": "POST"}}, "unknown key"),
    ],
)
def test_a_bad_api_section_is_refused(section, problem):
    with pytest.raises(ConfigError, match=problem):
        parse_endpoints(section)
