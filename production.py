"""gunicorn configuration: `gunicorn -c production.py 'app:create_app()'`."""

import os
import shutil

from dotenv import load_dotenv

# PORT and WEB_CONCURRENCY may live in .env like every other setting; the environment wins.
load_dotenv()


def _whole(name: str, default: str, low: int, high: int) -> int:
    """A whole-number variable, or stop with a message naming it."""
    value = os.environ.get(name, "").strip() or default
    if not value.isdigit() or not low <= int(value) <= high:
        raise SystemExit(f"{name} must be a whole number from {low} to {high}, not {value!r}")
    return int(value)


bind = f"0.0.0.0:{_whole('PORT', '5000', 1, 65535)}"
workers = _whole("WEB_CONCURRENCY", "2", 1, 64)
# Twilio gives up on a webhook after 15 s; monitors answer within REPLY_DEADLINE (10 s).
timeout = 30
graceful_timeout = 20
accesslog = "-"
# gunicorn's control socket defaults to one path per user ($HOME/.gunicorn/gunicorn.ctl), which two
# instances on a host would fight over; nothing here uses it.
control_socket_disable = True
# No query strings or bodies in access lines: they could carry numbers.
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(L)ss'

# prometheus_client reads this when imported, so it must be set before workers load the app.
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", os.path.join(os.getcwd(), "var", "prometheus-multiproc"))


# What one worker's metric files can take (prometheus_client starts each at 64 KiB and doubles it).
METRICS_ROOM = 1 << 20


def on_starting(server):
    path = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    shutil.rmtree(path, ignore_errors=True)
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        server.log.warning("cannot create PROMETHEUS_MULTIPROC_DIR %s (%s)", path, exc)


def _room_for_metrics(path: str) -> OSError | None:
    """None when `path` has METRICS_ROOM free for real, else the error that says why not.

    prometheus_client maps sparse files: on a full disk the first write to a page kills the
    process with SIGBUS, so every new worker died at import (a crash loop). Allocating the room
    up front turns that into an ordinary error we can act on.
    """
    probe = os.path.join(path, f"room-probe-{os.getpid()}")
    try:
        fd = os.open(probe, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
        try:
            os.posix_fallocate(fd, 0, METRICS_ROOM)
        finally:
            os.close(fd)
            os.unlink(probe)
    except OSError as exc:
        return exc
    return None


def post_fork(server, worker):
    # Runs in the new worker before it imports the app (and prometheus_client, which reads the
    # variable once): without room, this worker keeps its metrics in memory instead of dying.
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
    problem = _room_for_metrics(path) if path else None
    if problem is not None:
        os.environ.pop("PROMETHEUS_MULTIPROC_DIR")
        server.log.error(
            "worker %s: no room for metrics in PROMETHEUS_MULTIPROC_DIR %s (%s); its /metrics shows "
            "only its own counters until a worker starts with room",
            worker.pid,
            path,
            problem.strerror or problem,
        )


def child_exit(server, worker):
    # Imported here, in the arbiter only when a worker exits: importing prometheus_client in the
    # config file would fix its mode before PROMETHEUS_MULTIPROC_DIR is read by the workers.
    from prometheus_client import multiprocess  # noqa: PLC0415

    multiprocess.mark_process_dead(worker.pid)
