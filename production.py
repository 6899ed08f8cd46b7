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


def on_starting(server):
    path = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path, exist_ok=True)


def child_exit(server, worker):
    # Imported here, in the arbiter only when a worker exits: importing prometheus_client in the
    # config file would fix its mode before PROMETHEUS_MULTIPROC_DIR is read by the workers.
    from prometheus_client import multiprocess  # noqa: PLC0415

    multiprocess.mark_process_dead(worker.pid)
