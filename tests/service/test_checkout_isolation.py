"""The suite's results never depend on a developer's own operator.yml or .env in the checkout.

The app reads ./operator.yml and ./.env from the current directory; tests/conftest.py runs every
test from its own temporary directory, and the subprocesses tests start get one too.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.paths import REPO

pytestmark = pytest.mark.slow

# Either file, if a test read it, would change what that test sees.
INVALID_RULES = "rules: [{name: x, monitor: nope, query: q, threshold: 1}]\n"
WRONG_ENV = "TWILIO_AUTH_TOKEN=wrong\nAUTHORIZED_NUMBERS=+15555550999:viewer\n"

# A small part of the suite that reads settings, files and the app the way everything else does.
SAMPLE = [
    "tests/sms/test_app.py",
    "tests/service/test_config.py",
    "tests/monitors/test_monitors.py::test_the_example_config_file_is_valid_for_every_monitor",
]

# Planted in the copy only: what any test there would see of the two files.
PROBE = """
import os

from config import Settings


def test_a_test_in_the_checkout_sees_neither_file():
    assert not os.path.exists("operator.yml") and not os.path.exists(".env")
    settings = Settings.from_env({"TWILIO_AUTH_TOKEN": "t"})
    assert settings.operator_config == "" and dict(settings.file) == {}
"""

# What the app itself picks up from the copy when nothing else is said: the planted files.
SEEN_BY_THE_APP = """
from app import create_app
settings = create_app().extensions["operator"].settings
print(settings.twilio_auth_token, settings.file["rules"][0]["monitor"])
"""


def copy_of_the_checkout(target: Path) -> Path:
    """The checkout's files as they are in the working tree: tracked, plus new ones not ignored."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_file():  # a tracked file deleted in the working tree stays deleted
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def test_a_developers_operator_yml_and_env_never_reach_the_tests(tmp_path):
    checkout = copy_of_the_checkout(tmp_path / "checkout")
    (checkout / "operator.yml").write_text(INVALID_RULES)
    (checkout / ".env").write_text(WRONG_ENV)
    (checkout / "tests" / "test_planted_probe.py").write_text(PROBE)
    env = {
        k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTEST_ADDOPTS", "OPERATOR_CONFIG")
    }

    # The planted files are live: anything run from the checkout itself reads them.
    seen = subprocess.run(
        [sys.executable, "-c", SEEN_BY_THE_APP],
        cwd=checkout,
        env={**env, "DATABASE_URL": f"sqlite:///{tmp_path}/seen.db", "LOG_DIR": str(tmp_path / "logs")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert seen.returncode == 0, seen.stderr[-3000:]
    assert seen.stdout.split() == ["wrong", "nope"]

    # The tests, run from that checkout, are untouched by them.
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            *SAMPLE,
            "tests/test_planted_probe.py",
        ],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]
    assert "failed" not in result.stdout and " passed" in result.stdout
