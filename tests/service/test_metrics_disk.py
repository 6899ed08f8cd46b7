"""production.py on a full PROMETHEUS_MULTIPROC_DIR: workers keep serving instead of dying of SIGBUS."""

from __future__ import annotations

import pytest
import requests

from tests.support.disks import full_tmpfs
from tests.support.live_server import SignedClient, base_env, gunicorn
from tests.support.phones import ADMIN, TOKEN, reply_text

pytestmark = pytest.mark.slow


def test_a_full_metrics_directory_keeps_every_worker_serving_without_a_crash_loop(tmp_path):
    with full_tmpfs(tmp_path / "full", size="1m") as full:
        env = base_env(
            tmp_path,
            TWILIO_AUTH_TOKEN=TOKEN,
            AUTHORIZED_NUMBERS=f"{ADMIN}:admin",
            PROMETHEUS_MULTIPROC_DIR=str(full / "metrics"),
        )
        with gunicorn(tmp_path, env, workers=2) as url:
            client = SignedClient(url, TOKEN)
            replies = [reply_text(client.post(ADMIN, "help").content) for _ in range(8)]
            scrape = requests.get(url + "/metrics", timeout=10)
        console = "".join(p.read_text() for p in tmp_path.glob("gunicorn-*.log"))
    assert all(r and r.startswith("Commands:") for r in replies), replies
    assert scrape.status_code == 200 and "operator_commands_total" in scrape.text
    assert console.count("Booting worker") == 2, console[-3000:]  # each worker started once
    assert "SIGBUS" not in console and "signal 7" not in console
    assert console.count("no room for metrics") == 2


def test_metrics_stay_merged_across_workers_when_the_directory_has_room(tmp_path):
    env = base_env(tmp_path, TWILIO_AUTH_TOKEN=TOKEN, AUTHORIZED_NUMBERS=f"{ADMIN}:admin")
    with gunicorn(tmp_path, env, workers=2) as url:
        client = SignedClient(url, TOKEN)
        for _ in range(6):
            client.post(ADMIN, "help")
        body = requests.get(url + "/metrics", timeout=10).text
    lines = [line for line in body.splitlines() if line.startswith("operator_commands_total{")]
    assert sum(float(line.rsplit(" ", 1)[1]) for line in lines if 'command="help"' in line) == 6
    console = "".join(p.read_text() for p in tmp_path.glob("gunicorn-*.log"))
    assert "no room for metrics" not in console
