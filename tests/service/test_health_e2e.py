"""The production gunicorn with and without a real worker process: /healthz tells them apart."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import requests

from tests.support.alertmanager_server import wait_for
from tests.support.fakes.twilio_api import FakeTwilio
from tests.support.heartbeats import HEARTBEAT_TOKEN
from tests.support.live_server import gunicorn
from tests.support.paths import PAYLOADS
from tests.support.phones import ADMIN, RESPONDER, TOKEN
from tests.support.workers import start_worker, stop_worker, worker_env

pytestmark = pytest.mark.slow
AM_TOKEN = "am-token-health-e2e"
SID = "AC" + "2" * 32


@pytest.fixture
def fake():
    fake = FakeTwilio(SID, TOKEN).start()
    yield fake
    fake.stop()


def health(url: str) -> tuple[int, dict]:
    response = requests.get(url + "/healthz", timeout=10)
    return response.status_code, response.json()


def test_gunicorn_without_a_worker_is_unhealthy_until_one_runs_and_again_once_it_stops(tmp_path, fake):
    (tmp_path / "operator.yml").write_text("heartbeats:\n  - {name: backup, timeout: 26h}\n")
    env = worker_env(
        tmp_path,
        fake,
        f"sqlite:///{tmp_path}/operator.db",
        ALERTMANAGER_TOKEN=AM_TOKEN,
        HEARTBEAT_TOKEN=HEARTBEAT_TOKEN,
        WORKER_SILENT_AFTER="3s",
        OPERATOR_CONFIG=str(tmp_path / "operator.yml"),
    )
    with gunicorn(tmp_path, env, workers=2) as url:
        page = requests.post(
            url + "/webhook/alertmanager",
            json=json.loads((PAYLOADS / "alertmanager_firing.json").read_text()),
            headers={"Authorization": f"Bearer {AM_TOKEN}"},
            timeout=10,
        )
        assert page.status_code == 200 and page.json()["texts"] == 2
        status, body = health(url)
        assert (status, body["status"], body["worker"]) == (503, "error", "never seen")
        assert body["oldest_queued_seconds"] is not None, "the pages wait for a worker, and /healthz says so"
        assert "flask --app app worker" in body["message"]
        assert requests.get(url + "/livez", timeout=10).status_code == 200, "SMS keeps working meanwhile"
        assert fake.messages == []

        worker = start_worker(tmp_path, env)
        try:
            wait_for(lambda: len(fake.messages) == 2, "the queued pages to reach Twilio")
            assert {m.to for m in fake.messages} == {ADMIN, RESPONDER}
            status, body = wait_for(lambda: (h := health(url))[0] == 200 and h, "a healthy /healthz")
            assert (body["status"], body["worker"], body["workers"]) == ("ok", "ok", 1)
            wait_for(lambda: health(url)[1]["oldest_queued_seconds"] is None, "an empty queue")
            check = subprocess.run(
                [sys.executable, "-m", "flask", "--app", "app", "check"],
                cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            assert check.returncode == 0, check.stdout + check.stderr
            assert "1 worker(s), last heartbeat" in check.stdout
        finally:
            assert stop_worker(worker) == 0

        status, body = wait_for(lambda: (h := health(url))[0] == 503 and h, "the silence to be noticed")
        assert body["worker"] == "silent" and body["workers"] == 0
        ping = requests.get(url + "/heartbeat/backup", params={"token": HEARTBEAT_TOKEN}, timeout=10)
        assert ping.status_code == 200
    logs = (tmp_path / "logs" / "operator.log").read_text()
    console = "".join(p.read_text() for p in tmp_path.glob("gunicorn-*.log"))
    assert '"GET /heartbeat/backup" 200' in console, "the access log shows the path"
    for text in (logs, console, (tmp_path / "worker.log").read_text()):
        assert HEARTBEAT_TOKEN not in text
