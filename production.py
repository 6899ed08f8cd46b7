"""gunicorn configuration: `gunicorn -c production.py 'app:create_app()'`.

Slow clients: gthread workers keep a connection that trickles its headers on a thread of its
own, so a handful of them cannot hold every signed request past Twilio's 15 s deadline, and a
worker stuck longer than `timeout` is replaced. More than a handful (a script, a crowd) is the
reverse proxy's job: deploy/nginx.conf buffers whole requests before they reach gunicorn.
"""

import ipaddress
import os
import shutil
import sys

from dotenv import load_dotenv
from gunicorn.errors import HaltServer

from config import ConfigError, Settings, stop

# Every setting may live in ./.env, as for the app itself; the environment wins.
load_dotenv(os.path.join(os.getcwd(), ".env"))


def _whole(name: str, default: str, low: int, high: int) -> int:
    """A whole-number variable, or stop with a line naming it."""
    value = os.environ.get(name, "").strip() or default
    if not value.isdigit() or not low <= int(value) <= high:
        stop(ConfigError(f"{name} must be a whole number from {low} to {high}, not {value!r}"))
    return int(value)


def _bind() -> str:
    """BIND_ADDRESS:PORT; loopback unless told otherwise, since a reverse proxy belongs in front."""
    host = os.environ.get("BIND_ADDRESS", "").strip() or "127.0.0.1"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        stop(ConfigError(f"BIND_ADDRESS must be an IP address like 127.0.0.1, 0.0.0.0 or ::, not {host!r}"))
    port = _whole("PORT", "5000", 1, 65535)
    return f"[{address}]:{port}" if address.version == 6 else f"{address}:{port}"


# Checked here, in the arbiter, before anything binds: a bad variable stops `gunicorn` with one
# line and status 2 instead of every worker failing to boot with a traceback.
try:
    Settings.from_env(os.environ)
except ConfigError as exc:
    stop(exc)

bind = _bind()
workers = _whole("WEB_CONCURRENCY", "2", 1, 64)
worker_class = "gthread"
threads = _whole("WEB_THREADS", "8", 1, 64)
# Under Twilio's 15 s: a worker that stops answering is killed and replaced before Twilio gives
# up. Requests themselves end sooner: monitors answer within REPLY_DEADLINE (10 s).
timeout = 14
# Idle keep-alive connections are closed soon so they do not hold threads.
keepalive = 5
graceful_timeout = 20
accesslog = "-"
# gunicorn's control socket defaults to one path per user ($HOME/.gunicorn/gunicorn.ctl), which two
# instances on a host would fight over; nothing here uses it.
control_socket_disable = True
# No query strings or bodies in access lines: they could carry numbers.
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(L)ss'

# prometheus_client reads this when imported, so it must be set before workers load the app.
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", os.path.join(os.getcwd(), "var", "prometheus-multiproc"))

# A worker that finds a bad setting only the app checks (a section of operator.yml) exits 2
# (config.stop); it says so through this pipe so that the arbiter stops with status 2 too
# instead of booting workers forever.
_config_failed_r, _config_failed_w = os.pipe()
os.set_blocking(_config_failed_r, False)


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
    _report_config_errors(worker)


def _report_config_errors(worker):
    load = worker.load_wsgi

    def load_wsgi():
        try:
            load()
        except SystemExit as exc:
            if exc.code == 2:
                os.write(_config_failed_w, b"!")
            raise

    worker.load_wsgi = load_wsgi


def child_exit(server, worker):
    # Imported here, in the arbiter only when a worker exits: importing prometheus_client in the
    # config file would fix its mode before PROMETHEUS_MULTIPROC_DIR is read by the workers.
    from prometheus_client import multiprocess  # noqa: PLC0415

    multiprocess.mark_process_dead(worker.pid)
    try:
        failed = os.read(_config_failed_r, 64)
    except BlockingIOError:
        return
    if failed:
        sys.stderr.flush()
        raise HaltServer("a worker stopped on a bad setting (named above)", 2)
