"""The real `flask --app app worker` as a subprocess beside an in-process app, sending to the Twilio fake."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

from tests.support.fakes.twilio_api import FakeTwilio
from tests.support.live_server import base_env
from tests.support.phones import ADMIN, RESPONDER, TOKEN, VIEWER


def worker_env(tmp_path: Path, settings, fake: FakeTwilio, **extra: str) -> dict[str, str]:
    """The worker's environment: the same store and numbers as the web app, Twilio at the fake."""
    # Every documented variable blanked first, so a local .env or shell export cannot leak in.
    env = base_env(tmp_path)
    config = tmp_path / "operator.yml"
    if not config.exists():
        config.write_text("rules: []\n")
    env.update(
        TWILIO_AUTH_TOKEN=TOKEN,
        TWILIO_ACCOUNT_SID=settings.twilio_account_sid,
        TWILIO_FROM_NUMBER=settings.twilio_from_number,
        SMS_BACKEND="twilio",
        TWILIO_API_URL=fake.url,
        SMS_RATE="50",
        AUTHORIZED_NUMBERS=f"{ADMIN}:admin,{RESPONDER}:responder,{VIEWER}:viewer",
        DATABASE_URL=settings.database_url,
        LOG_DIR=str(tmp_path / "logs"),
        ALERT_INTERVAL="1",
        ALERT_LIMITS="100 per minute",
        RECOVERY_DELAY="1s",
        CACHE_TTL="0",
        OPERATOR_CONFIG=str(config),
    )
    env.update(extra)
    return env


def start_worker(tmp_path: Path, env: dict[str, str]) -> subprocess.Popen:
    log = open(tmp_path / "worker.log", "wb")  # noqa: SIM115 - the child holds it
    return subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "app", "worker"],
        env=env,
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def stop_worker(proc: subprocess.Popen) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=20)


def received(fake: FakeTwilio, pattern: str, to: str | None = None) -> list[re.Match]:
    """Texts the fake accepted whose body matches `pattern` (anchored), optionally to one number."""
    with fake.lock:
        messages = list(fake.messages)
    return [m for s in messages if (to is None or s.to == to) and (m := re.fullmatch(pattern, s.body))]
