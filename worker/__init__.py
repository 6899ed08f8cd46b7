"""The worker process: the loop, its heartbeat, the leader lock, retention. Only the app factory imports it."""

from __future__ import annotations

from flask import Flask

from monitors import checkup
from worker import liveness
from worker.loop import worker_command


def init_app(app: Flask) -> None:
    app.cli.add_command(worker_command)
    checkup.add_check(app, "worker", checkup.OwnCheck(lambda: liveness.check(app.extensions["operator"])))
