from __future__ import annotations

import copy

import pytest

from app import create_app
from config import ConfigError
from monitors.newrelic import NewRelicMonitor, parse_nrql
from tests.support.apps import from_file, with_settings
from tests.support.fakes.newrelic import ACCOUNT_ID, API_KEY, FakeNewRelic, payload
from tests.support.phones import VIEWER, Phone

ERRORS_NRQL = "SELECT count(*) FROM TransactionError FACET appName SINCE 30 minutes ago"
APDEX_NRQL = "SELECT apdex(duration, t: 0.5) FROM Transaction SINCE 1 hour ago"


@pytest.fixture
def fake():
    nrql = {
        ERRORS_NRQL: payload("newrelic_nrql_facet.json")["data"]["actor"]["account"]["nrql"]["results"],
        APDEX_NRQL: [{"apdex": {"score": 0.93, "s": 900, "t": 80, "f": 20, "count": 1000}}],
    }
    with FakeNewRelic(nrql=nrql) as server:
        yield server


@pytest.fixture
def monitor(fake):
    m = NewRelicMonitor(
        API_KEY, str(ACCOUNT_ID), api_url=fake.url, queries={"errors": ERRORS_NRQL, "apdex": APDEX_NRQL}
    )
    yield m
    m.close()


@pytest.fixture
def nr_phone(fake, settings, tmp_path):
    config = tmp_path / "operator.yml"
    config.write_text(f"nrql:\n  errors: '{ERRORS_NRQL}'\n  apdex: '{APDEX_NRQL}'\n")
    changed = with_settings(
        settings,
        newrelic_api_key=API_KEY,
        newrelic_account_id=str(ACCOUNT_ID),
        newrelic_api_url=fake.url,
        **from_file(config),
    )
    app = create_app(changed)
    yield Phone(app.test_client())
    app.extensions["operator"].close()


def test_the_status_line_names_the_red_app(monitor, fake):
    assert monitor.check().text == "3 apps: 1 red checkout"
    assert fake.requests[0].headers["x-api-key"] == API_KEY


def test_all_green_apps_are_ok(fake, monitor):
    for app in fake.applications:
        app["health_status"] = "green"
    assert monitor.check().text == "ok 3 apps"


def test_apps_lists_the_worst_first(nr_phone):
    reply = nr_phone.text("apps")
    checkout, search, cart = (reply.index(name) for name in ("checkout RED", "search", "cart ok"))
    assert checkout < search < cart
    assert "checkout RED 850ms err 4.2% apdex 0.62" in reply
    assert "search GRAY not reporting" in reply


def test_apps_follows_pagination(fake, monitor):
    template = payload("newrelic_applications.json")["applications"][0]
    fake.applications = [dict(copy.deepcopy(template), id=i, name=f"app-{i}") for i in range(250)]
    assert monitor.check().text == "ok 250 apps"
    assert [r.query.get("page") for r in fake.requests] == [None, "2"]


def test_a_wrong_api_key_is_reported_as_auth_refused(fake):
    monitor = NewRelicMonitor("NRAK-WRONG", str(ACCOUNT_ID), api_url=fake.url)
    result = monitor.check()
    assert not result.ok and result.permanent
    assert result.error == "auth refused (HTTP 401): The API key provided is invalid"


def test_a_named_nrql_query_is_sent_with_graphql_variables(nr_phone, fake):
    assert nr_phone.text("nr errors") == "errors: checkout 1234, cart 56"
    sent = [r for r in fake.requests if r.path == "/graphql"][0]
    assert sent.headers["api-key"] == API_KEY
    body = sent.json()
    assert body["variables"] == {"accountId": ACCOUNT_ID, "nrql": ERRORS_NRQL}
    assert ERRORS_NRQL not in body["query"]


def test_nested_nrql_values_are_flattened(monitor):
    assert monitor.query("apdex").text == "apdex: apdex.score 0.93 apdex.s 900 apdex.t 80"


def test_graphql_errors_in_a_200_are_errors(fake):
    monitor = NewRelicMonitor(API_KEY, str(ACCOUNT_ID), api_url=fake.url, queries={"bad": "SELEC count(*)"})
    result = monitor.query("bad")
    assert not result.ok
    assert result.error.startswith("NRQL error: NRQL Syntax Error")


def test_an_account_the_key_cannot_see_is_an_error(fake):
    monitor = NewRelicMonitor(API_KEY, "999", api_url=fake.url, queries={"errors": ERRORS_NRQL})
    assert monitor.query("errors").error == "NRQL error: Account not authorized"


def test_value_is_the_first_number_of_a_named_or_raw_query(monitor):
    assert monitor.value("errors").data["value"] == 1234.0
    assert monitor.value(APDEX_NRQL).data["value"] == 0.93


def test_raw_nrql_needs_the_admin_role(nr_phone):
    assert "admin" in nr_phone.text(f"nr {APDEX_NRQL}", number=VIEWER)
    assert nr_phone.text(f"nr {APDEX_NRQL}").startswith("nrql: apdex.score 0.93")


def test_nr_without_a_name_lists_the_queries(nr_phone):
    assert nr_phone.text("nr") == "NRQL queries: errors, apdex. Text NR <name>."


@pytest.mark.parametrize(
    "region, host", [("us", "https://api.newrelic.com"), ("eu", "https://api.eu.newrelic.com")]
)
def test_the_region_picks_the_api_host(region, host):
    monitor = NewRelicMonitor(API_KEY, "1", region=region)
    assert monitor.rest.base_url == host and monitor.graphql.base_url == host


def test_a_non_numeric_account_id_is_refused_at_start(settings):
    with pytest.raises(ConfigError, match="NEWRELIC_ACCOUNT_ID"):
        NewRelicMonitor.from_settings(
            with_settings(settings, newrelic_api_key=API_KEY, newrelic_account_id="acme")
        )


@pytest.mark.parametrize("section", [["SELECT 1"], {"x": "DELETE FROM y"}, {"two words": "SELECT 1"}])
def test_a_bad_nrql_section_is_refused(section):
    with pytest.raises(ConfigError, match="nrql"):
        parse_nrql(section)
