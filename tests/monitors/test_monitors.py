from __future__ import annotations

import pytest

from monitors import MONITORS, build_monitors, check_all
from monitors.custom_api import CustomApiMonitor
from monitors.loki import LokiMonitor
from tests.support.apps import from_file, with_settings
from tests.support.fakes.custom_api import TOKEN, FakeCustomApi
from tests.support.fakes.loki import FakeLoki
from tests.support.fakes.newrelic import FakeNewRelic
from tests.support.paths import REPO
from tests.support.phones import Phone


@pytest.fixture
def fakes():
    with FakeCustomApi() as api, FakeLoki(hang=True) as hung, FakeNewRelic() as nr:
        yield api, hung, nr


def test_only_configured_monitors_are_built(settings, tmp_path):
    assert list(build_monitors(settings)) == ["system"]
    full = with_settings(
        settings,
        prometheus_url="http://127.0.0.1:9",
        monitor_db_url=f"sqlite:///{tmp_path}/x.db",
        newrelic_api_key="k",
        custom_api_url="http://127.0.0.1:9",
        loki_url="http://127.0.0.1:9",
        log_files=f"{tmp_path}/*.log",
    )
    built = build_monitors(full)
    assert list(built) == list(MONITORS)
    assert [m.name for m in built.values()] == ["prom", "db", "nr", "api", "loki", "logs", "sys"]
    for monitor in built.values():
        monitor.close()


def test_a_hung_backend_is_reported_as_timeout_and_the_others_still_answer(fakes):
    api, hung, _ = fakes
    monitors = {
        "api": CustomApiMonitor(api.url, TOKEN, timeout=30),
        "loki": LokiMonitor(hung.url, timeout=30),
    }
    results = check_all(monitors, deadline=1.0)
    assert [r.line for r in results][0].startswith("api ok ")
    assert results[1].line == "loki ERROR timeout"


def test_status_covers_exactly_the_configured_backends_in_order(settings, fakes):
    api, hung, nr = fakes
    from app import create_app

    changed = with_settings(
        settings,
        custom_api_url=api.url,
        custom_api_token=TOKEN,
        loki_url=hung.url,
        newrelic_api_key="NRAK-TESTKEY0123456789ABCDEFGHIJ",
        newrelic_api_url=nr.url,
        monitor_timeout=1.0,
        reply_deadline=3.0,
    )
    app = create_app(changed)
    try:
        reply = Phone(app.test_client()).text("status")
    finally:
        app.extensions["operator"].close()
    parts = reply.split(" | ")
    assert [p.split()[0] for p in parts] == ["nr", "api", "loki", "sys"]
    assert parts[0] == "nr 3 apps: 1 red checkout"
    assert parts[2].startswith("loki ERROR timeout")


def test_the_example_config_file_is_valid_for_every_monitor(settings):
    example = REPO / "operator.yml.example"
    configured = with_settings(
        settings,
        **from_file(example),
        prometheus_url="http://127.0.0.1:9",
        newrelic_api_key="k",
        newrelic_account_id="1",
        custom_api_url="http://127.0.0.1:9",
    )
    built = build_monitors(configured)
    try:
        assert built["prometheus"].queries["free_disk"].order == "asc"
        assert "errors" in built["newrelic"].queries
        assert list(built["api"].endpoints) == ["health", "orders"]
    finally:
        for monitor in built.values():
            monitor.close()
