"""config.py: typed settings from the environment; a bad value names its variable."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from config import ConfigError, Heartbeat, Settings, read_rules
from tests.support.paths import REPO

BASE = {"TWILIO_AUTH_TOKEN": "tok-0123456789"}


def settings(**env: str) -> Settings:
    return Settings.from_env({**BASE, **env})


def test_defaults_follow_the_readme():
    s = settings()
    assert s.database_url == "sqlite:///var/operator.db"
    assert s.rate_limit == "30 per 5 minutes"
    assert (s.proxy_hops, s.sms_max_segments, s.sms_emoji) == (0, 1, False)
    assert (s.log_dir, s.log_level, s.redis_url, s.public_url) == ("logs", "INFO", "", "")
    assert dict(s.authorized) == {}


def test_times_are_written_in_utc_unless_timezone_names_an_iana_zone():
    assert settings().timezone == "UTC" and str(settings().zone) == "UTC"
    berlin = settings(TIMEZONE=" Europe/Berlin ")
    assert berlin.timezone == "Europe/Berlin" and str(berlin.zone) == "Europe/Berlin"


def test_it_refuses_to_start_without_an_auth_token():
    with pytest.raises(ConfigError, match="TWILIO_AUTH_TOKEN"):
        Settings.from_env({})
    with pytest.raises(ConfigError, match="TWILIO_AUTH_TOKEN"):
        Settings.from_env({"TWILIO_AUTH_TOKEN": "   "})


def test_authorized_numbers_carry_roles():
    s = settings(AUTHORIZED_NUMBERS=" +15555550100:admin, +15555550101 ,+15555550102:Viewer,")
    assert dict(s.authorized) == {
        "+15555550100": "admin",
        "+15555550101": "responder",
        "+15555550102": "viewer",
    }
    assert s.first_authorized == "+15555550100"


def test_values_are_trimmed_and_parsed():
    s = settings(
        PUBLIC_URL=" https://ops.example.com/ ",
        PROXY_HOPS="2",
        SMS_EMOJI="yes",
        SMS_MAX_SEGMENTS="3",
        LOG_LEVEL="debug",
        RATE_LIMIT="5 per minute; 100 per day",
    )
    assert s.public_url == "https://ops.example.com"
    assert (s.proxy_hops, s.sms_emoji, s.sms_max_segments, s.log_level) == (2, True, 3, "DEBUG")


@pytest.mark.parametrize(
    "name, value",
    [
        ("AUTHORIZED_NUMBERS", "5555550100"),
        ("AUTHORIZED_NUMBERS", "+15555550100:root"),
        ("AUTHORIZED_NUMBERS", "+1 555 555 0100"),
        ("TWILIO_FROM_NUMBER", "operator"),
        ("PUBLIC_URL", "ops.example.com"),
        ("PUBLIC_URL", "ftp://ops.example.com"),
        ("PUBLIC_URL", "https://ops.example.com/?route=sms"),
        ("PUBLIC_URL", "https://ops.example.com/#sms"),
        ("METRICS_CACHE_TTL", "-5"),
        ("PROXY_HOPS", "-1"),
        ("PROXY_HOPS", "two"),
        ("RATE_LIMIT", "ten per minute"),
        ("RATE_LIMIT", "10/5m"),
        ("SMS_MAX_SEGMENTS", "0"),
        ("SMS_MAX_SEGMENTS", "11"),
        ("SMS_MAX_SEGMENTS", "1.5"),
        ("SMS_EMOJI", "maybe"),
        ("LOG_LEVEL", "LOUD"),
        ("MONITOR_TIMEOUT", "soon"),
        ("REPLY_DEADLINE", "0"),
        ("TIMEZONE", "Mars/Olympus_Mons"),
        ("TIMEZONE", "CET+1"),
        ("TIMEZONE", "../etc/passwd"),
    ],
)
def test_a_bad_value_stops_start_up_naming_the_variable(name, value):
    with pytest.raises(ConfigError) as excinfo:
        settings(**{name: value})
    assert name in str(excinfo.value)


def test_a_config_error_never_echoes_the_auth_token():
    with pytest.raises(ConfigError) as excinfo:
        Settings.from_env({"TWILIO_AUTH_TOKEN": "supersecret-token", "PROXY_HOPS": "x"})
    assert "supersecret-token" not in str(excinfo.value)


def test_env_example_documents_every_core_variable_and_the_configuration_reference_lists_them():
    example = (REPO / ".env.example").read_text()
    reference = (REPO / "docs" / "configuration.md").read_text()
    documented = set(re.findall(r"^([A-Z_]+)=", example, re.M))
    core = {
        "TWILIO_ACCOUNT_SID",
        "TWILIO_AUTH_TOKEN",
        "TWILIO_FROM_NUMBER",
        "TWILIO_WEBHOOK_SHARED_KEY",
        "PUBLIC_URL",
        "PROXY_HOPS",
        "AUTHORIZED_NUMBERS",
        "DATABASE_URL",
        "REDIS_URL",
        "RATE_LIMIT",
        "SMS_MAX_SEGMENTS",
        "SMS_EMOJI",
        "LOG_DIR",
        "LOG_LEVEL",
    }
    assert core <= documented
    for name in documented:
        assert f"`{name}`" in reference, name


def test_the_env_example_itself_is_a_valid_configuration_once_a_token_is_set():
    example = (REPO / ".env.example").read_text()
    env = dict(re.findall(r"^([A-Z_]+)=(.*)$", example, re.M))
    env["TWILIO_AUTH_TOKEN"] = "generated-token-123"
    assert Settings.from_env(env).rate_limit == "30 per 5 minutes"


def make_runs_env_script(cwd, port: str = "") -> subprocess.CompletedProcess:
    """scripts/init_env.py as `make run` calls it: PORT in its environment only when given."""
    env = {k: v for k, v in os.environ.items() if k != "PORT"} | ({"PORT": port} if port else {})
    if not (cwd / ".env.example").exists():
        (cwd / ".env.example").write_text((REPO / ".env.example").read_text())
    script = str(REPO / "scripts" / "init_env.py")
    return subprocess.run(
        [sys.executable, script], cwd=cwd, env=env, capture_output=True, text=True, check=True
    )


def written_env(cwd) -> dict[str, str]:
    return dict(re.findall(r"^([A-Z_]+)=(.*)$", (cwd / ".env").read_text(), re.M))


def test_make_runs_env_file_checks_signatures_against_the_local_server(tmp_path):
    make_runs_env_script(tmp_path, port="5123")
    written = written_env(tmp_path)
    assert Settings.from_env(written).public_url == "http://127.0.0.1:5123"
    assert written["PORT"] == "5123"


def test_make_run_with_a_new_port_moves_port_and_public_url_together_in_an_existing_env(tmp_path):
    make_runs_env_script(tmp_path)
    token = written_env(tmp_path)["TWILIO_AUTH_TOKEN"]
    make_runs_env_script(tmp_path, port="6150")
    written = written_env(tmp_path)
    assert (written["PORT"], written["PUBLIC_URL"]) == ("6150", "http://127.0.0.1:6150")
    assert written["TWILIO_AUTH_TOKEN"] == token, "the rest of .env is kept"
    later = make_runs_env_script(tmp_path)  # a plain `make run` afterwards
    assert later.stderr == "" and written_env(tmp_path)["PORT"] == "6150"


def test_an_env_whose_port_and_local_public_url_disagree_is_reported_in_one_line(tmp_path):
    make_runs_env_script(tmp_path, port="5000")
    env_file = tmp_path / ".env"
    env_file.write_text(
        env_file.read_text().replace("PUBLIC_URL=http://127.0.0.1:5000", "PUBLIC_URL=http://127.0.0.1:6150")
    )
    result = make_runs_env_script(tmp_path)
    assert result.stderr.count("\n") == 1
    assert "PORT=5000" in result.stderr and "6150" in result.stderr
    assert written_env(tmp_path)["PUBLIC_URL"] == "http://127.0.0.1:6150", "reported, not rewritten"


def test_a_public_url_behind_a_proxy_is_neither_moved_nor_questioned(tmp_path):
    make_runs_env_script(tmp_path, port="5000")
    env_file = tmp_path / ".env"
    env_file.write_text(
        env_file.read_text().replace("PUBLIC_URL=http://127.0.0.1:5000", "PUBLIC_URL=https://ops.example.com")
    )
    assert make_runs_env_script(tmp_path).stderr == ""
    make_runs_env_script(tmp_path, port="7000")
    written = written_env(tmp_path)
    assert (written["PORT"], written["PUBLIC_URL"]) == ("7000", "https://ops.example.com")


def test_the_pipeline_checks_have_documented_defaults_and_take_durations():
    assert (settings().worker_silent_after, settings().heartbeat_token, settings().heartbeats) == (
        120.0,
        "",
        (),
    )
    assert settings(WORKER_SILENT_AFTER="5m", HEARTBEAT_TOKEN=" hb-secret ").worker_silent_after == 300.0
    assert settings(HEARTBEAT_TOKEN=" hb-secret ").heartbeat_token == "hb-secret"
    with pytest.raises(ConfigError, match="^WORKER_SILENT_AFTER must be a duration"):
        settings(WORKER_SILENT_AFTER="soon")


def test_heartbeats_come_from_the_config_file(tmp_path):
    config = tmp_path / "operator.yml"
    config.write_text(
        """
heartbeats:
  - name: backup
    timeout: 26h
    recipients: ["+15555550100"]
  - name: alerting-pipeline
    timeout: 5m
    watchdog: Watchdog
"""
    )
    s = settings(OPERATOR_CONFIG=str(config))
    assert s.heartbeats == (
        Heartbeat("backup", 26 * 3600.0, ("+15555550100",)),
        Heartbeat("alerting-pipeline", 300.0, (), "Watchdog"),
    )
    assert s.watchdog_names == {"Watchdog"}


@pytest.mark.parametrize(
    "entry, problem",
    [
        ("name: backup", "heartbeat 'backup': 'timeout' is required"),
        ("name: backup\n    timeout: soon", "heartbeat 'backup': 'timeout' must be a duration"),
        ("name: backup\n    timeout: 0", "heartbeat 'backup': 'timeout' must be a duration"),
        ("name: 'two words'\n    timeout: 5m", "heartbeat 'two words': 'name' must be 1-64 letters"),
        ("timeout: 5m", "heartbeat #1: 'name' must be"),
        ("name: backup\n    timeout: 5m\n    page: me", "heartbeat 'backup': unknown key(s) page"),
        ("name: backup\n    timeout: 5m\n    recipients: [5550100]", "recipient 5550100 is not an E.164"),
        ("name: backup\n    timeout: 5m\n    watchdog: [a]", "'watchdog' must be the alertname"),
    ],
)
def test_a_heartbeat_mistake_stops_start_up_naming_it(tmp_path, entry, problem):
    config = tmp_path / "operator.yml"
    config.write_text(f"heartbeats:\n  - {entry}\n")
    with pytest.raises(ConfigError) as caught:
        settings(OPERATOR_CONFIG=str(config))
    assert str(caught.value).startswith("heartbeats: ") and problem in str(caught.value)


def test_two_heartbeats_cannot_share_a_name(tmp_path):
    config = tmp_path / "operator.yml"
    config.write_text("heartbeats:\n  - {name: a, timeout: 5m}\n  - {name: a, timeout: 1h}\n")
    with pytest.raises(ConfigError, match="heartbeat 'a': the name is used by another heartbeat"):
        settings(OPERATOR_CONFIG=str(config))
    config.write_text("heartbeats: {a: 5m}\n")
    with pytest.raises(ConfigError, match="^heartbeats: must be a list"):
        settings(OPERATOR_CONFIG=str(config))


BROKEN_RULES = """queries:
  answer: vector(42)
rules:
- name: busy
  op: ">
  threshold: 1
api:
  health: {path: /health}
"""


def test_a_rules_block_that_is_not_yaml_leaves_the_other_sections_to_start_with(tmp_path):
    path = tmp_path / "operator.yml"
    path.write_text(BROKEN_RULES)
    settings = Settings.from_env({"TWILIO_AUTH_TOKEN": "t", "OPERATOR_CONFIG": str(path)})
    assert dict(settings.file) == {
        "queries": {"answer": "vector(42)"},
        "api": {"health": {"path": "/health"}},
    }
    with pytest.raises(ConfigError) as caught:
        read_rules(str(path))
    assert str(caught.value) == (
        f"OPERATOR_CONFIG: {path} is not valid YAML: while scanning a quoted scalar (line 5): found unexpected "
        "end of stream (line 9)"
    )


@pytest.mark.parametrize(
    "text",
    ["queries: [\nrules: []\n", "rules: []\nqueries:\n  a: [\n", "rules: [\nqueries: {a: [}\n", "- a\n"],
)
def test_a_mistake_outside_the_rules_still_stops_start_up_in_one_line(tmp_path, text):
    path = tmp_path / "operator.yml"
    path.write_text(text)
    with pytest.raises(
        ConfigError, match=r"^OPERATOR_CONFIG: .*operator.yml (is not valid YAML|must be a)"
    ) as caught:
        Settings.from_env({"TWILIO_AUTH_TOKEN": "t", "OPERATOR_CONFIG": str(path)})
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    "written, used",
    [
        # libpq's own spellings get the psycopg (3) driver that is installed.
        (
            "postgres://ops:s3cret@db.example.net:5432/operator",
            "postgresql+psycopg://ops:s3cret@db.example.net:5432/operator",
        ),
        (
            "postgresql://db.example.net/operator?sslmode=require",
            "postgresql+psycopg://db.example.net/operator?sslmode=require",
        ),
        ("postgres+psycopg://db/operator", "postgresql+psycopg://db/operator"),
        (
            "postgresql+psycopg://postgres@127.0.0.1/operator",
            "postgresql+psycopg://postgres@127.0.0.1/operator",
        ),
        ("sqlite:///var/operator.db", "sqlite:///var/operator.db"),
    ],
)
def test_database_urls_are_accepted_as_libpq_users_write_them(written, used):
    assert settings(DATABASE_URL=written).database_url == used
    assert settings(MONITOR_DB_URL=written).monitor_db_url == used


@pytest.mark.parametrize("name", ["DATABASE_URL", "MONITOR_DB_URL"])
@pytest.mark.parametrize(
    "value",
    [
        "not a url",
        "postgress://ops:s3cret@db/operator",
        "oracle+nope://ops:s3cret@db/x",
        "postgresql+psycopg2://ops:s3cret@db/x",
    ],
)
def test_a_bad_database_url_names_the_variable_without_echoing_its_password(name, value):
    with pytest.raises(ConfigError) as excinfo:
        settings(**{name: value})
    assert str(excinfo.value).startswith(name)
    assert "s3cret" not in str(excinfo.value)


@pytest.mark.parametrize(
    "value", ["127.0.0.1:6379", "http://:s3cret@cache/0", "async+redis://:s3cret@cache/0"]
)
def test_a_redis_url_that_is_not_one_names_the_variable_without_echoing_it(value):
    with pytest.raises(ConfigError) as excinfo:
        settings(REDIS_URL=value)
    assert str(excinfo.value).startswith("REDIS_URL") and "s3cret" not in str(excinfo.value)
    assert settings(REDIS_URL="rediss://:s3cret@cache:6380/0").redis_url == "rediss://:s3cret@cache:6380/0"
