"""`flask --app app check`: every backend, the rules file, Twilio and Alertmanager, each on one line."""

from __future__ import annotations

import pytest

from app import create_app
from monitors.checkup import probe, table
from tests.support.alertmanager_server import alertmanager
from tests.support.apps import app_with, from_file, with_settings
from tests.support.fakes.custom_api import TOKEN, FakeCustomApi
from tests.support.fakes.twilio_api import FakeTwilio
from tests.support.heartbeats import worker_beat
from tests.support.servers import free_port


def check(settings) -> tuple[int, dict[str, str], str]:
    """(exit code, backend -> its line, stderr) of `flask check`, with a worker running."""
    with app_with(settings) as app:
        worker_beat(app.extensions["operator"])
        result = app.test_cli_runner().invoke(args=["check"])
    lines = {line.split()[0]: line for line in result.stdout.splitlines()[1:] if line.strip()}
    return result.exit_code, lines, result.stderr


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
            worker_beat(app.extensions["operator"])
            result = app.test_cli_runner().invoke(args=["check"])
        finally:
            app.extensions["operator"].close()
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert any(
        line.startswith("prometheus") and "FAILED" in line and "connection refused" in line for line in lines
    )
    assert any(line.startswith("api") and " ok " in line for line in lines)
    assert "1 of 7 check(s) failed: prometheus" in result.stderr


def test_check_exits_zero_when_everything_answers(settings):
    app = create_app(settings)
    try:
        worker_beat(app.extensions["operator"])
        result = app.test_cli_runner().invoke(args=["check"])
    finally:
        app.extensions["operator"].close()
    assert result.exit_code == 0
    assert "all 5 check(s) ok" in result.output


def test_a_refused_token_is_shown_as_the_reason(settings):
    with FakeCustomApi() as api:
        app = create_app(with_settings(settings, custom_api_url=api.url, custom_api_token="wrong"))
        try:
            rows = probe(app.extensions["operator"].monitors)
        finally:
            app.extensions["operator"].close()
    assert "auth refused (HTTP 401) (permanent)" in table(rows)


RULES = """
rules:
  - name: host_busy
    monitor: system
    query: cpu
    op: "=>"
    threshold: 90
"""


def test_a_rule_typo_fails_the_check_naming_the_rule(settings, tmp_path):
    (tmp_path / "operator.yml").write_text(RULES)
    code, lines, stderr = check(with_settings(settings, **from_file(tmp_path / "operator.yml")))
    assert code == 1
    assert " FAILED " in lines["rules"]
    assert (
        "rules: rule 'host_busy': 'op' must be one of > >= < <= == !=, not '=>' (permanent)" in lines["rules"]
    )
    assert "check(s) failed: rules" in stderr


def test_good_rules_and_a_broken_yaml_block_each_get_their_line(settings, tmp_path):
    path = tmp_path / "operator.yml"
    path.write_text(RULES.replace("=>", ">="))
    code, lines, _ = check(with_settings(settings, **from_file(path)))
    assert code == 0 and f"ok 1 rule(s) in {path}" in lines["rules"]
    path.write_text(RULES.replace('"=>"', '">'))
    code, lines, _ = check(with_settings(settings, **from_file(path)))
    assert code == 1 and "is not valid YAML: while scanning a quoted scalar" in lines["rules"]


@pytest.fixture
def twilio(settings):
    fake = FakeTwilio(settings.twilio_account_sid, settings.twilio_auth_token).start()
    yield fake
    fake.stop()


def sending(settings, fake, **changes):
    return with_settings(settings, **{"sms_backend": "twilio", "twilio_api_url": fake.url, **changes})


def test_the_twilio_credentials_are_checked_with_a_read_only_account_fetch(settings, twilio):
    code, lines, _ = check(sending(settings, twilio))
    assert code == 0
    assert "ok account 'Operator test account' (Full), sending from +1500***0006" in lines["twilio"]
    assert twilio.messages == [], "nothing is sent"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (
            {"twilio_auth_token": "not-the-token"},
            "auth refused (HTTP 401): check TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN",
        ),
        ({"twilio_account_sid": "AC" + "2" * 32}, "auth refused (HTTP 401)"),
        ({"twilio_api_url": f"http://127.0.0.1:{free_port()}"}, "cannot reach the SMS provider"),
    ],
)
def test_wrong_twilio_credentials_or_no_answer_fail_the_check(settings, twilio, change, reason):
    code, lines, _ = check(sending(settings, twilio, **change))
    assert code == 1 and " FAILED " in lines["twilio"] and reason in lines["twilio"]
    assert "not-the-token" not in lines["twilio"]


def test_a_suspended_twilio_account_fails_the_check(settings, twilio):
    twilio.account_status = "suspended"
    code, lines, _ = check(sending(settings, twilio))
    assert code == 1 and "account 'Operator test account' is suspended" in lines["twilio"]


def test_the_console_backend_says_texts_are_not_sent(settings):
    code, lines, _ = check(settings)
    assert code == 0 and "console: texts are written to the log, not sent" in lines["twilio"]


def test_an_unreachable_alertmanager_fails_the_check_without_showing_its_password(settings):
    url = f"http://ops:s3cret-pw@127.0.0.1:{free_port()}"
    code, lines, _ = check(with_settings(settings, alertmanager_url=url))
    assert code == 1 and "unreachable: connection refused" in lines["alertmanager"]
    assert "s3cret-pw" not in lines["alertmanager"]


@pytest.mark.slow
def test_a_real_alertmanager_passes_the_check_with_its_version(settings, tmp_path):
    with alertmanager(tmp_path, "am", "http://127.0.0.1:9/hook", "t") as url:
        code, lines, _ = check(with_settings(settings, alertmanager_url=url))
    assert code == 0
    assert " ok " in lines["alertmanager"] and ", cluster disabled" in lines["alertmanager"]
