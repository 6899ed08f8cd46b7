"""`integrations:` in operator.yml: checked at start, one line naming the entry and the key."""

from __future__ import annotations

import pytest

from app import create_app
from config import ConfigError, Settings
from tests.support.apps import app_with, with_settings
from tests.support.integrations import OG_KEY, PD_KEY, entry, with_integrations
from tests.support.oncall import payments_and_infra

ENV = {"TWILIO_AUTH_TOKEN": "t" * 32}


def settings_from(tmp_path, yml: str, **env) -> Settings:
    (tmp_path / "operator.yml").write_text(yml)
    return Settings.from_env({**ENV, "OPERATOR_CONFIG": str(tmp_path / "operator.yml"), **env})


def test_the_secret_is_read_from_the_variable_key_env_names(tmp_path):
    settings = settings_from(
        tmp_path, "integrations:\n  - {name: pd, kind: pagerduty, key_env: PD_KEY}\n", PD_KEY=PD_KEY
    )
    assert settings.integrations == {"pd": PD_KEY}


def test_a_key_env_that_is_not_set_is_a_config_error_naming_it(tmp_path):
    with pytest.raises(
        ConfigError, match=r"^integrations: integration 'pd': the variable PD_KEY \(its key_env\) is not set$"
    ):
        settings_from(tmp_path, "integrations:\n  - {name: pd, kind: pagerduty, key_env: PD_KEY}\n")


@pytest.mark.parametrize(
    "item, problem",
    [
        ({"name": "two words", "kind": "pagerduty"}, "'name' must be one word"),
        ({"name": "pd", "kind": "pigeon"}, "'kind' must be one of alertmanager, datadog, grafana"),
        ({"name": "pd", "kind": "email"}, "'kind: email' is not yet supported"),
        ({"name": "pd", "kind": "pagerduty"}, "'key_env' is required"),
        ({"name": "pd", "kind": "pagerduty", "key_env": "PD_KEY", "colour": "red"}, "unknown key(s) colour"),
        ({"name": "pd", "kind": "pagerduty", "key_env": "PD_KEY", "limit": "lots"}, "'limit' must read like"),
        (
            {"name": "pd", "kind": "pagerduty", "key_env": "PD_KEY", "team": "nobody"},
            "'team: nobody' is not a team",
        ),
        (
            {"name": "pd", "kind": "pagerduty", "key_env": "PD_KEY", "expect_every": "soon"},
            "'expect_every' must be a duration",
        ),
    ],
)
def test_a_bad_entry_stops_start_up_with_one_line_naming_it(settings, item, problem):
    bad = with_settings(settings, file={"integrations": [item]}, integrations={"pd": PD_KEY})
    with pytest.raises(ConfigError) as caught:
        create_app(bad)
    assert str(caught.value).startswith("integrations: ") and problem in str(caught.value)
    assert "\n" not in str(caught.value) and PD_KEY not in str(caught.value)


def test_a_pagerduty_key_must_be_32_characters(settings):
    bad = with_settings(settings, file={"integrations": [entry("pd")]}, integrations={"pd": "short"})
    with pytest.raises(ConfigError, match="PD_KEY must hold 32 characters"):
        create_app(bad)


def test_two_integrations_may_not_share_a_secret(settings):
    file = {"integrations": [entry("og"), {**entry("am"), "key_env": "OG_KEY"}]}
    with pytest.raises(ConfigError, match="integration 'am': 'key_env' holds the same secret"):
        create_app(with_settings(settings, file=file, integrations={"og": OG_KEY, "am": OG_KEY}))


def test_flask_integrations_lists_each_url_and_snippet_without_secrets(settings):
    configured = with_integrations(
        with_settings(settings, public_url="https://ops.example.com"),
        entry("pd", team="payments", expect_every="26h"),
        entry("og"),
        entry("am"),
        sections=payments_and_infra(),
    )
    with app_with(configured) as app:
        output = app.test_cli_runner().invoke(args=["integrations"], catch_exceptions=False).output
    assert "url: https://ops.example.com/v2/enqueue" in output
    assert "api_url: https://ops.example.com/integrations/og/" in output
    assert "URL: https://ops.example.com/integrations/am" in output
    assert (
        "routing_key: <the value of PD_KEY>" in output
        and "pd (pagerduty, team payments, expect every 1d2h)" in output
    )
    assert PD_KEY not in output and OG_KEY not in output


def test_flask_integrations_shows_a_grafana_contact_points_url_and_credentials(settings):
    configured = with_integrations(with_settings(settings, public_url="https://ops.example.com"), entry("gf"))
    with app_with(configured) as app:
        output = app.test_cli_runner().invoke(args=["integrations"], catch_exceptions=False).output
    assert "Integration: Webhook" in output
    assert "URL: https://ops.example.com/integrations/gf" in output
    assert "Basic Authentication Password: <the value of GF_KEY>" in output
    assert "Authorization Header - Credentials: <the value of GF_KEY>" in output


def test_flask_integrations_shows_a_curl_line_for_a_generic_webhook(settings):
    configured = with_integrations(with_settings(settings, public_url="https://ops.example.com"), entry("gw"))
    with app_with(configured) as app:
        output = app.test_cli_runner().invoke(args=["integrations"], catch_exceptions=False).output
    assert "curl -fsS https://ops.example.com/integrations/gw" in output
    assert '-H "Authorization: Bearer <the value of GW_KEY>"' in output
    assert "-d summary=" in output and "-d action=close" in output
