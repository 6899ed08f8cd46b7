"""`flask --app app worker` as a real process for a test: its environment, start and clean stop."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.support.fakes.twilio_api import FakeTwilio
from tests.support.live_server import base_env
from tests.support.phones import ADMIN, RESPONDER, TOKEN, VIEWER


def worker_env(tmp: Path, fake: FakeTwilio, database_url: str, **extra: str) -> dict[str, str]:
    """Sending to the Twilio fake, fast loops and limits; `extra` wins (OPERATOR_CONFIG, ...)."""
    env = base_env(tmp)
    env.update(
        TWILIO_AUTH_TOKEN=TOKEN,
        TWILIO_ACCOUNT_SID=fake.account_sid,
        TWILIO_FROM_NUMBER="+15005550006",
        SMS_BACKEND="twilio",
        TWILIO_API_URL=fake.url,
        SMS_RATE="50",
        AUTHORIZED_NUMBERS=f"{ADMIN}:admin,{RESPONDER}:responder,{VIEWER}:viewer",
        DATABASE_URL=database_url,
        ALERT_INTERVAL="1",
        ALERT_LIMITS="100 per minute",
        RECOVERY_DELAY="1s",
    )
    env.update(extra)
    return env


def app_worker_env(tmp: Path, settings, fake: FakeTwilio, **extra: str) -> dict[str, str]:
    """A worker beside an in-process app: its store and numbers, no rules unless the test wrote some."""
    config = tmp / "operator.yml"
    if not config.exists():
        config.write_text("rules: []\n")
    env = worker_env(tmp, fake, settings.database_url, CACHE_TTL="0", OPERATOR_CONFIG=str(config))
    env.update(TWILIO_FROM_NUMBER=settings.twilio_from_number, LOG_DIR=str(tmp / "logs"))
    env.update(extra)
    return env


def received(fake: FakeTwilio, pattern: str, to: str | None = None) -> list[re.Match]:
    """Texts the fake accepted whose body matches `pattern` (anchored), optionally to one number."""
    with fake.lock:
        messages = list(fake.messages)
    return [m for s in messages if (to is None or s.to == to) and (m := re.fullmatch(pattern, s.body))]


def start_worker(cwd: Path, env: dict[str, str], name: str = "worker") -> subprocess.Popen:
    """Start a worker in `cwd`, its output appended to `<name>.log` there."""
    log = open(cwd / f"{name}.log", "ab")  # noqa: SIM115 - the child holds it
    return subprocess.Popen([sys.executable, "-m", "flask", "--app", "app", "worker"], env=env, cwd=cwd,
                            stdout=log, stderr=subprocess.STDOUT)  # fmt: skip


def stop_worker(proc: subprocess.Popen) -> int:
    """SIGTERM, as a service manager stops it; returns its exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=20)


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    """Poll `condition` until it is truthy and return it; fail naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        time.sleep(0.1)
    return result
