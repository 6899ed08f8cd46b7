"""The worker process: the loop, the leader lock, retention. Nothing but the app factory imports it."""

from __future__ import annotations

from flask import Flask

from worker.loop import worker_command


def init_app(app: Flask) -> None:
    app.cli.add_command(worker_command)
