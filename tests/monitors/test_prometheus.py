from __future__ import annotations

import pytest

from app import create_app
from config import ConfigError
from monitors.prometheus import BUILTIN, Named, PrometheusMonitor, format_result, parse_queries
from tests.support.apps import from_file, with_settings
from tests.support.fakes.loopback import FakeServer
from tests.support.phones import VIEWER, Phone
from tests.support.prometheus_server import RECORDED, RECORDED_VALUE, prometheus
from tests.support.servers import free_port


@pytest.fixture(scope="module")
def prom(tmp_path_factory):
    with prometheus(tmp_path_factory.mktemp("prometheus")) as server:
        yield server


@pytest.fixture
def monitor(prom):
    m = PrometheusMonitor(prom.url, queries=parse_queries({"answer": RECORDED}))
    yield m
    m.close()


@pytest.fixture
def prom_phone(prom, settings, tmp_path):
    config = tmp_path / "operator.yml"
    config.write_text(f"queries:\n  answer: '{RECORDED}'\n  scrape: {{query: 'up', order: asc}}\n")
    app = create_app(with_settings(settings, prometheus_url=prom.url, **from_file(config)))
    yield Phone(app.test_client())
    app.extensions["operator"].close()


@pytest.mark.slow  # a real Prometheus
def test_the_status_line_counts_targets_and_names_the_down_one(monitor, prom):
    result = monitor.check()
    assert result.ok, result.error
    assert result.text == "ok 1/2 up (down: localhost)"


@pytest.mark.slow  # a real Prometheus
def test_a_configured_query_answers_with_the_recorded_series(prom_phone):
    assert prom_phone.text("metrics answer") == f"answer: {RECORDED_VALUE:g}"


@pytest.mark.slow  # a real Prometheus
def test_metrics_up_puts_the_down_target_first(prom_phone):
    reply = prom_phone.text("metrics up")
    assert reply.startswith("up: 0 localhost")
    assert "1 127.0.0.1" in reply


@pytest.mark.slow  # a real Prometheus
def test_metrics_without_a_name_lists_builtin_and_configured_names(prom_phone):
    reply = prom_phone.text("metrics")
    for name in [*BUILTIN, "answer", "scrape"]:
        assert name in reply


@pytest.mark.slow  # a real Prometheus
def test_a_question_about_cpu_runs_the_cpu_query(prom_phone):
    # This Prometheus has no node exporter: the answer says so, and what this host reads.
    reply = prom_phone.text("how's the CPU looking?")
    assert reply.startswith(
        "cpu: no data in Prometheus. It needs node_exporter on each host. This host: sys cpu "
    )


@pytest.mark.slow  # a real Prometheus
@pytest.mark.parametrize("body", ["metrics answer!", "Metrics: ANSWER?", "metrics answer %"])
def test_punctuation_after_a_metric_name_is_not_raw_promql(prom_phone, body):
    assert prom_phone.text(body, number=VIEWER) == f"answer: {RECORDED_VALUE:g}"


@pytest.mark.slow  # a real Prometheus
def test_an_admin_can_run_raw_promql(prom_phone):
    assert prom_phone.text("metrics count(up)") == "2"


@pytest.mark.slow  # a real Prometheus
def test_a_viewer_cannot_run_raw_promql(prom_phone):
    reply = prom_phone.text("metrics count(up)", number=VIEWER)
    assert "admin" in reply and "answer" in reply


@pytest.mark.slow  # a real Prometheus
def test_a_prometheus_parse_error_becomes_a_readable_reply(prom_phone):
    reply = prom_phone.text("metrics sum(rate(up[5m])")
    assert reply.startswith("prom ERROR bad query:")
    assert "parse error" in reply


@pytest.mark.slow  # a real Prometheus
def test_an_unknown_metric_name_suggests_the_closest(prom_phone):
    assert "Did you mean 'answer'?" in prom_phone.text("metrics answr")


@pytest.mark.slow  # a real Prometheus
def test_value_gives_the_recorded_number_for_rules(monitor):
    assert monitor.value("answer").data["value"] == RECORDED_VALUE
    assert monitor.value(f"{RECORDED} * 2").data["value"] == 2 * RECORDED_VALUE


@pytest.mark.slow  # a real Prometheus
def test_value_of_up_is_the_worst_target(monitor):
    assert monitor.value("up").data["value"] == 0.0


@pytest.mark.slow  # a real Prometheus
def test_value_is_none_when_the_query_has_no_data(monitor):
    result = monitor.value("no_such_metric_anywhere")
    assert result.ok and result.data["value"] is None


def test_an_unreachable_prometheus_says_so():
    result = PrometheusMonitor(f"http://127.0.0.1:{free_port()}", timeout=2).check()
    assert not result.ok and result.error == "unreachable: connection refused"


class PromErrors(FakeServer):
    """Prometheus's documented error envelope for the status codes it uses."""

    def __init__(self, status: int, error_type: str, error: str):
        super().__init__()
        self.reply = status, {}, {"status": "error", "errorType": error_type, "error": error}

    def answer(self, request):
        if request.path == "/-/healthy":
            return 200, {}, "Prometheus Server is Healthy.\n"
        return self.reply


@pytest.mark.parametrize(
    "status, error_type, error, expected, permanent",
    [
        (
            400,
            "bad_data",
            'invalid parameter "query": 1:4: parse error',
            "bad query: invalid parameter",
            True,
        ),
        (
            422,
            "execution",
            "query processing would load too many samples",
            "query failed: query processing",
            True,
        ),
        (503, "unavailable", "TSDB not ready", "unavailable: TSDB not ready", False),
        (503, "timeout", "query timed out in expression evaluation", "query timeout: query timed out", False),
    ],
)
def test_prometheus_error_shapes_become_readable_errors(status, error_type, error, expected, permanent):
    with PromErrors(status, error_type, error) as fake:
        result = PrometheusMonitor(fake.url, timeout=2).query("up")
    assert not result.ok
    assert result.error.startswith(expected)
    assert result.permanent is permanent


@pytest.mark.parametrize(
    "data, named, expected",
    [
        ({"resultType": "scalar", "result": [1, "3.14159"]}, Named("x"), "m: 3.14"),
        ({"resultType": "vector", "result": []}, Named("x"), "m: no data"),
        ({"resultType": "string", "result": [1, "hello"]}, Named("x"), "m: hello"),
        (
            {
                "resultType": "vector",
                "result": [
                    {"metric": {"job": "node", "instance": f"web-{i}:9100"}, "value": [1, str(v)]}
                    for i, v in enumerate([12.5, 91.25, 40, 7, 55])
                ],
            },
            Named("x", "%"),
            "m: 91.2% web-1, 55% web-4, 40% web-2 +2 more",
        ),
        (
            {
                "resultType": "vector",
                "result": [
                    {"metric": {"instance": "a:1"}, "value": [1, "1"]},
                    {"metric": {"instance": "b:1"}, "value": [1, "0"]},
                ],
            },
            Named("up", order="asc"),
            "m: 0 b, 1 a",
        ),
        (
            {
                "resultType": "matrix",
                "result": [{"metric": {"job": "api"}, "values": [[1, "5"], [2, "123456"]]}],
            },
            Named("x"),
            "m: 123k api",
        ),
    ],
)
def test_results_are_formatted_compactly(data, named, expected):
    assert format_result("m", data, named) == expected


@pytest.mark.parametrize(
    "section, problem",
    [
        ("cpu: up", "must map names"),
        ({"two words": "up"}, "one word"),
        ({"cpu": ""}, "needs a PromQL string"),
        ({"cpu": {"query": "up", "colour": "red"}}, "unknown key"),
        ({"cpu": {"query": "up", "order": "sideways"}}, "asc or desc"),
    ],
)
def test_a_bad_queries_section_is_refused_with_the_reason(section, problem):
    with pytest.raises(ConfigError, match=problem):
        parse_queries(section)


def test_configured_queries_override_the_builtins():
    queries = parse_queries({"cpu": "avg(rate(process_cpu_seconds_total[5m]))*100"})
    assert queries["cpu"].query == "avg(rate(process_cpu_seconds_total[5m]))*100"
    assert queries["memory"] == BUILTIN["memory"]
