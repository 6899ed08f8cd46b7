"""The production gunicorn (production.py, several workers) on a free loopback port, for a test."""

from __future__ import annotations

import os
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests
from twilio.request_validator import RequestValidator

from tests.support.paths import REPO
from tests.support.processes import running
from tests.support.servers import free_port


def base_env(tmp: Path, **overrides: str) -> dict[str, str]:
    """A clean environment: every documented variable set, so a developer's .env cannot leak in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PROMETHEUS_MULTIPROC", "GUNICORN"))}
    for line in (REPO / ".env.example").read_text().splitlines():
        name, sep, _ = line.partition("=")
        if sep and not name.startswith("#"):
            env[name.strip()] = ""
    env.update(
        DATABASE_URL=f"sqlite:///{tmp}/operator.db",
        LOG_DIR=str(tmp / "logs"),
        LOG_LEVEL="INFO",
        PROXY_HOPS="0",
        RATE_LIMIT="10 per 5 minutes",
        SMS_MAX_SEGMENTS="1",
        SMS_EMOJI="false",
        # Only the ./operator.yml of the process's own (temporary) working directory, if any.
        OPERATOR_CONFIG="",
        PYTHONPATH=str(REPO),
    )
    env.update(overrides)
    return env


@contextmanager
def gunicorn(tmp: Path, env: dict[str, str], workers: int = 4, timeout: float = 60.0) -> Iterator[str]:
    """Run `gunicorn -c production.py 'app:create_app()'` from `tmp`; yields the base URL."""
    port = free_port()
    env = {"BIND_ADDRESS": "127.0.0.1", **env, "WEB_CONCURRENCY": str(workers), "PORT": str(port)}
    # Signatures are checked against PUBLIC_URL: unless a test names one, it is where we listen.
    env["PUBLIC_URL"] = env.get("PUBLIC_URL") or f"http://127.0.0.1:{port}"
    tmp.mkdir(parents=True, exist_ok=True)
    log_path = tmp / f"gunicorn-{port}.log"
    cmd = [sys.executable, "-m", "gunicorn", "-c", str(REPO / "production.py"), "app:create_app()"]
    url = f"http://127.0.0.1:{port}"
    # /livez: the web process is up; /healthz would wait for a worker too.
    with running(cmd, url + "/livez", log_path, timeout, cwd=tmp, env=env):
        _wait_for_workers(Path(env["LOG_DIR"]) / "operator.log", workers, time.monotonic() + timeout)
        yield url


def _wait_for_workers(log: Path, workers: int, deadline: float) -> None:
    """Until every worker has built its app, so a burst really spreads over all of them."""
    while time.monotonic() < deadline:
        if log.exists() and log.read_text(errors="replace").count("Operator ready") >= workers:
            return
        time.sleep(0.1)
    raise RuntimeError(f"fewer than {workers} workers ready; see {log}")


class SignedClient:
    """Texts a live server the way Twilio does: form POST with X-Twilio-Signature."""

    def __init__(self, url: str, token: str):
        self.url = url.rstrip("/") + "/sms"
        self.validator = RequestValidator(token)
        self._local = threading.local()

    @property
    def session(self) -> requests.Session:
        # One session per thread: requests.Session is not meant to be shared across threads.
        if not hasattr(self._local, "session"):
            self._local.session = requests.Session()
        return self._local.session

    def post(self, number: str, body: str, sid: str | None = None, timeout: float = 30) -> requests.Response:
        params = {
            "MessageSid": sid or "SM" + uuid.uuid4().hex,
            "AccountSid": "AC" + "1" * 32,
            "From": number,
            "To": "+15005550006",
            "Body": body,
            "NumMedia": "0",
        }
        signature = self.validator.compute_signature(self.url, params)
        return self.session.post(
            self.url, data=params, headers={"X-Twilio-Signature": signature}, timeout=timeout
        )
