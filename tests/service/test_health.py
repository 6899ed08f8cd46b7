"""The pipeline watches itself: /healthz and `flask check` report the worker's heartbeat and the queue."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import func, select

from app import create_app
from core import db
from outbox import queue
from outbox.queue import Kind
from tests.support.alerts import WEBHOOK_TOKEN
from tests.support.apps import app_with, with_settings
from tests.support.disks import fill, full_tmpfs
from tests.support.heartbeats import worker_beat
from tests.support.phones import ADMIN
from worker import liveness


def wait_for(condition, seconds: float = 15.0) -> bool:
    """Whether `condition` holds within `seconds` (the store's write probe runs every few seconds)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def enqueue(services, seconds_ago: float = 0.0, not_before: float | None = None) -> None:
    with services.engine.begin() as conn:
        row = queue.enqueue(conn, ADMIN, "page", Kind.ALERT, services.settings, not_before=not_before)
        # As if it had been queued that long ago.
        conn.execute(
            queue.outbox.update().where(queue.outbox.c.id == row).values(created_at=db.now() - seconds_ago)
        )


def test_healthz_is_ok_while_a_worker_beats_and_reports_it(client, services):
    worker_beat(services, seconds_ago=3)
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.get_json()
    assert 3 <= body.pop("worker_heartbeat_seconds_ago") < 10
    assert body == {
        "status": "ok",
        "store": "ok",
        "worker": "ok",
        "workers": 1,
        "oldest_queued_seconds": None,
    }


def test_without_any_worker_healthz_is_503_and_says_why_while_livez_stays_ok(client, services):
    enqueue(services)
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.get_json()
    assert (body["status"], body["store"], body["worker"], body["workers"]) == (
        "error",
        "ok",
        "never seen",
        0,
    )
    assert body["message"] == "no worker has ever run against this store: start `flask --app app worker`"
    assert body["oldest_queued_seconds"] is not None, "the page nobody sends is reported"
    assert client.get("/livez").status_code == 200


@pytest.mark.parametrize("seconds_ago, code", [(90, 200), (115, 200), (125, 503), (3600, 503)])
def test_a_worker_silent_past_two_minutes_makes_healthz_503(client, services, seconds_ago, code):
    worker_beat(services, seconds_ago=seconds_ago)
    response = client.get("/healthz")
    assert response.status_code == code
    if code == 503:
        assert response.get_json()["worker"] == "silent"
        assert "over 2m" in response.get_json()["message"]


def test_the_silence_threshold_is_configurable(settings):
    with app_with(with_settings(settings, worker_silent_after=600.0)) as app:
        worker_beat(app.extensions["operator"], seconds_ago=300)
        assert app.test_client().get("/healthz").status_code == 200
    with app_with(with_settings(settings, worker_silent_after=30.0)) as app:
        assert app.test_client().get("/healthz").status_code == 503


def test_one_beating_worker_of_several_is_enough(client, services):
    worker_beat(services, seconds_ago=600, worker_id="old-host:1")
    worker_beat(services, seconds_ago=1, worker_id="new-host:2")
    body = client.get("/healthz").get_json()
    assert (body["status"], body["workers"]) == ("ok", 1)


def test_healthz_reports_the_age_of_the_oldest_text_waiting_to_go_out(client, services):
    worker_beat(services)
    enqueue(services, seconds_ago=45)
    enqueue(services, seconds_ago=5)
    assert 45 <= client.get("/healthz").get_json()["oldest_queued_seconds"] < 60


def test_a_text_scheduled_for_later_is_not_waiting_yet(client, services):
    worker_beat(services)
    enqueue(services, seconds_ago=0, not_before=db.now() + 120)  # a recovery notice's delay
    assert client.get("/healthz").get_json()["oldest_queued_seconds"] is None


def test_check_fails_naming_the_worker_when_none_has_beaten(app):
    result = app.test_cli_runner().invoke(args=["check"])
    assert result.exit_code == 1
    [line] = [line for line in result.stdout.splitlines() if line.startswith("worker")]
    assert "FAILED" in line and "no worker has ever run against this store" in line
    assert "check(s) failed: worker" in result.stderr


def test_check_reports_a_silent_worker_and_a_beating_one(app, services):
    worker_beat(services, seconds_ago=300)
    result = app.test_cli_runner().invoke(args=["check"])
    assert result.exit_code == 1
    assert "no worker heartbeat for 5m (over 2m): is `flask --app app worker` running?" in result.stdout
    worker_beat(services, seconds_ago=2)
    result = app.test_cli_runner().invoke(args=["check"])
    assert result.exit_code == 0, result.output
    [line] = [line for line in result.stdout.splitlines() if line.startswith("worker")]
    assert " ok " in line and "1 worker(s), last heartbeat 2s ago" in line


@pytest.fixture
def on_a_small_disk(tmp_path, settings):
    """An app whose SQLite store lives on a 2 MB tmpfs, mounted as root (skipped where not allowed)."""
    with full_tmpfs(tmp_path / "small", size="2m") as disk:
        (disk / "filler").unlink()  # full_tmpfs fills it: start with room
        app = create_app(with_settings(settings, database_url=f"sqlite:///{disk}/operator.db",
                                       alertmanager_token=WEBHOOK_TOKEN))  # fmt: skip
        try:
            yield app, disk
        finally:
            app.extensions["operator"].close()


def test_with_the_disk_full_livez_and_healthz_report_a_store_that_cannot_write(on_a_small_disk):
    app, disk = on_a_small_disk
    client, services = app.test_client(), app.extensions["operator"]
    worker_beat(services, seconds_ago=3)
    assert client.get("/livez").status_code == 200 and client.get("/healthz").status_code == 200
    fill(disk)
    # Every write fails now: an alert cannot be stored, and the sender is told to retry.
    payload = {"alerts": [{"status": "firing", "labels": {"alertname": "Disk" + "x" * 3000}}]}
    headers = {"Authorization": f"Bearer {WEBHOOK_TOKEN}"}
    assert client.post("/webhook/alertmanager", json=payload, headers=headers).status_code == 503
    for path in ("/livez", "/healthz"):
        response = client.get(path)
        assert response.status_code == 503, path
        assert response.get_json()["store"] == "cannot write", path
        assert response.get_json()["status"] == "error", path


def test_a_full_disk_found_by_the_health_probe_alone_is_reported(on_a_small_disk):
    app, disk = on_a_small_disk
    client, services = app.test_client(), app.extensions["operator"]
    worker_beat(services, seconds_ago=3)
    assert client.get("/livez").status_code == 200
    fill(disk)
    # Nothing else wrote since: the check's own small write finds it (within a second of the last).
    assert wait_for(lambda: client.get("/livez").status_code == 503, seconds=3)
    for path in ("/livez", "/healthz"):
        assert client.get(path).get_json()["store"] == "cannot write", path


def test_once_there_is_room_again_the_store_is_ok_again(on_a_small_disk):
    app, disk = on_a_small_disk
    client, services = app.test_client(), app.extensions["operator"]
    worker_beat(services, seconds_ago=3)
    fill(disk)
    assert client.get("/livez").status_code == 503
    (disk / "filler").unlink()
    assert wait_for(lambda: client.get("/livez").status_code == 200)
    assert client.get("/healthz").status_code == 200


def test_the_health_check_writes_one_row_and_rewrites_it_in_place(client, services):
    for _ in range(3):
        client.get("/livez")
        client.get("/healthz")
    with services.engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(liveness.worker_heartbeats)) <= 1
        assert liveness.liveness(conn, 120.0, db.now()).seconds_ago is None  # the probe is no worker
