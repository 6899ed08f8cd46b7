from __future__ import annotations

from app import create_app
from monitors.checkup import probe, table
from tests.support.apps import with_settings
from tests.support.fakes.custom_api import TOKEN, FakeCustomApi
from tests.support.heartbeats import worker_beat
from tests.support.servers import free_port


def test_check_prints_every_backend_and_fails_when_one_is_down(settings):
    with FakeCustomApi() as api:
        changed = with_settings(
            settings,
            custom_api_url=api.url,
            custom_api_token=TOKEN,
            prometheus_url=f"http://127.0.0.1:{free_port()}",
        )
        app = create_app(changed)
        try:
            result = app.test_cli_runner().invoke(args=["check"])
        finally:
            app.extensions["operator"].close()
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert any(
        line.startswith("prometheus") and "FAILED" in line and "connection refused" in line for line in lines
    )
    assert any(line.startswith("api") and " ok " in line for line in lines)
    assert "1 of 3 backend(s) failed: prometheus" in result.stderr


def test_check_exits_zero_when_everything_answers(settings):
    app = create_app(settings)
    try:
        worker_beat(app.extensions["operator"])
        result = app.test_cli_runner().invoke(args=["check"])
    finally:
        app.extensions["operator"].close()
    assert result.exit_code == 0
    assert "all 1 backend(s) ok" in result.output


def test_a_refused_token_is_shown_as_the_reason(settings):
    with FakeCustomApi() as api:
        app = create_app(with_settings(settings, custom_api_url=api.url, custom_api_token="wrong"))
        try:
            rows = probe(app.extensions["operator"].monitors)
        finally:
            app.extensions["operator"].close()
    assert "auth refused (HTTP 401) (permanent)" in table(rows)
