from __future__ import annotations

import pytest

from app import create_app
from monitors.loki import LIMIT, LokiMonitor, logql
from tests.support.apps import with_settings
from tests.support.fakes.loki import FakeLoki
from tests.support.phones import Phone

APP = {"job": "shop", "app": "payment"}


@pytest.fixture
def fake():
    with FakeLoki() as server:
        server.push(APP, "INFO payment ok order=1", ago=3000)
        server.push(APP, "ERROR payment declined order=2", ago=1200)
        server.push(APP, 'ERROR payment gateway said "try later" order=3', ago=120)
        server.push({"job": "shop", "app": "cart"}, "ERROR cart timeout", ago=60)
        server.push(APP, "ERROR payment declined order=0", ago=2 * 86400)
        yield server


@pytest.fixture
def loki_phone(fake, settings):
    app = create_app(with_settings(settings, loki_url=fake.url))
    yield Phone(app.test_client())
    app.extensions["operator"].close()


def test_logql_escapes_quotes_and_backslashes():
    assert logql('{job=~".+"}', ['say "hi"', "C:\\tmp"]) == '{job=~".+"} |= "say \\"hi\\"" |= "C:\\\\tmp"'


def test_logs_counts_matches_and_shows_the_newest_line(loki_phone):
    reply = loki_phone.text("logs payment ERROR")
    assert reply.startswith("loki: 2 matches 'payment ERROR' in 1h, newest 2m ago: ERROR payment gateway")
    assert "order=2" in reply  # the second newest line fits too


def test_the_query_sent_is_the_selector_with_line_filters(loki_phone, fake):
    loki_phone.text("logs payment error 30m")
    sent = fake.requests[-1]
    assert sent.query["query"] == '{job=~".+"} |= "payment" |= "error"'
    assert sent.query["direction"] == "backward"
    assert int(sent.query["end"]) - int(sent.query["start"]) == 30 * 60 * 10**9


def test_a_longer_range_finds_older_lines(loki_phone):
    assert "3 matches" in loki_phone.text("logs payment ERROR 3d")


def test_a_quoted_phrase_is_one_filter(loki_phone):
    assert loki_phone.text('logs "said \\"try later\\""').startswith("loki: 1 match ")


def test_a_sentence_with_a_range_in_words_works(loki_phone, fake):
    reply = loki_phone.text("show me the cart logs from the last hour")
    assert reply.startswith("loki: 1 match 'cart' in 1h")


def test_no_match_says_zero(loki_phone):
    assert loki_phone.text("logs kangaroo") == "loki: 0 matches 'kangaroo' in 1h"


def test_lines_are_cut_to_one_segment(fake, loki_phone):
    fake.push(APP, "ERROR payment " + "x" * 400, ago=1)
    reply = loki_phone.text("logs payment")
    assert len(reply) <= 160 and reply.endswith("...")


def test_a_loki_parse_error_body_is_shown(fake):
    monitor = LokiMonitor(fake.url, selector="job=shop")
    result = monitor.query("search", ["3600", "x"])
    assert not result.ok and result.permanent
    assert result.error.startswith("Loki refused the query: parse error at line 1")


def test_more_lines_than_the_limit_are_shown_as_a_lower_bound(fake):
    for i in range(LIMIT + 5):
        fake.push(APP, f"WARN retry {i}", ago=10)
    result = LokiMonitor(fake.url).query("search", ["3600", "retry"])
    assert result.text.startswith(f"loki: {LIMIT}+ matches")


def test_the_status_line_uses_ready(fake):
    assert LokiMonitor(fake.url).check().text == "ok"
    fake.ready = False
    assert LokiMonitor(fake.url).check().error.startswith("not ready (HTTP 503)")


def test_a_loki_that_never_answers_times_out():
    with FakeLoki(hang=True) as fake:
        result = LokiMonitor(fake.url, timeout=0.5).query("search", ["3600", "x"])
    assert not result.ok and "timeout" in result.error
