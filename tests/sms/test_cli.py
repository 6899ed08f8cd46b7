"""cli.py: `flask --app app sms` texts a real running gunicorn exactly as Twilio would."""

from __future__ import annotations

import subprocess
import sys
import tempfile

import pytest

from tests.support.live_server import base_env, gunicorn
from tests.support.phones import ADMIN, STRANGER, TOKEN

pytestmark = pytest.mark.slow


def flask_sms(env: dict, *args: str) -> subprocess.CompletedProcess:
    """Run the CLI from an empty directory: the app comes from PYTHONPATH (base_env), never a
    developer's .env or operator.yml in the checkout."""
    with tempfile.TemporaryDirectory(prefix="flask-sms-") as cwd:
        return subprocess.run(
            [sys.executable, "-m", "flask", "--app", "app", "sms", *args],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    env = base_env(tmp, TWILIO_AUTH_TOKEN=TOKEN, AUTHORIZED_NUMBERS=f"{ADMIN}:admin")
    with gunicorn(tmp, env, workers=2) as url:
        yield url, env


def test_it_prints_the_reply_and_nothing_else(server):
    url, env = server
    result = flask_sms(env, "help", "--url", url + "/sms")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Commands: status, ") and result.stdout.count("\n") == 1
    assert "more" in result.stdout and "metrics" in result.stdout
    assert "INFO" not in result.stderr, "start-up and migration lines are held back without -v"


def test_with_v_it_also_shows_the_start_up_lines_and_the_reply_s_segment_count(server):
    url, env = server
    result = flask_sms(env, "help", "-v", "--url", url + "/sms")
    assert result.returncode == 0, result.stderr
    reply = result.stdout.strip()
    assert reply.startswith("Commands: status, ")
    assert "Operator ready" in result.stderr
    assert f"[1 segment(s), {len(reply)} chars" in result.stderr


def test_it_sends_from_the_first_authorized_number_unless_told_otherwise(server):
    url, env = server
    assert "Commands:" in flask_sms(env, "?", "--url", url + "/sms").stdout
    stranger = flask_sms(env, "help", "--from", STRANGER, "--url", url + "/sms")
    assert stranger.returncode == 0 and stranger.stdout == "" and "(no reply)" in stranger.stderr


def test_without_url_it_texts_the_server_at_public_url_as_make_run_writes_it(tmp_path):
    env = base_env(tmp_path, TWILIO_AUTH_TOKEN=TOKEN, AUTHORIZED_NUMBERS=ADMIN)
    with gunicorn(tmp_path, env, workers=1) as url:  # not on port 5000
        result = flask_sms({**env, "PUBLIC_URL": url}, "help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Commands: status, ")


def test_it_signs_for_public_url_when_the_server_validates_against_it(tmp_path):
    env = base_env(
        tmp_path,
        TWILIO_AUTH_TOKEN=TOKEN,
        AUTHORIZED_NUMBERS=ADMIN,
        PUBLIC_URL="https://ops.example.com",
    )
    with gunicorn(tmp_path, env, workers=1) as url:
        result = flask_sms(env, "status please", "--url", url + "/sms")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("sys ")


def test_a_wrong_token_is_reported_as_a_refused_signature(server):
    url, env = server
    result = flask_sms({**env, "TWILIO_AUTH_TOKEN": "not-the-server-token"}, "help", "--url", url + "/sms")
    assert result.returncode == 1
    assert "HTTP 403" in result.stderr and "signature refused" in result.stderr


@pytest.mark.parametrize("url", ["127.0.0.1:5000/sms", "ftp://127.0.0.1/sms"])
def test_a_malformed_url_is_a_usage_error(server, url):
    _, env = server
    result = flask_sms(env, "help", "--url", url)
    assert result.returncode == 2 and "--url must look like" in result.stderr


def test_an_unreachable_server_is_a_clear_error(server):
    _, env = server
    from tests.support.servers import free_port

    result = flask_sms(env, "help", "--url", f"http://127.0.0.1:{free_port()}/sms")
    assert result.returncode == 1 and "could not reach" in result.stderr
