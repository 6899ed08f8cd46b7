"""`flask --app app worker`: evaluates alert rules and sends the outbox, outside gunicorn.

Run one or several (on one or many hosts): all of them send, one at a time evaluates rules and
runs the periodic jobs (see leader.py). SIGTERM or Ctrl-C: the text in flight is finished and
recorded, claimed but unsent texts go back to the queue, and the process exits 0.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable

import click
from flask import current_app

import alerting
from config import ConfigError
from leader import make_leader
from rate_limiter import RateLimiter
from sender import Sender
from services import Services
from sms import make_backend

logger = logging.getLogger(__name__)

# Periodic jobs run by the leader next to rule evaluation, every JOB_PERIOD seconds at most.
# Each takes the process's Services; a failing job is logged and retried next period.
PERIODIC_JOBS: list[Callable[[Services], None]] = []
JOB_PERIOD = 15.0


def periodic_jobs() -> list[Callable[[Services], None]]:
    """PERIODIC_JOBS plus `escalation.run` when an `escalation` module is installed."""
    jobs = list(PERIODIC_JOBS)
    if importlib.util.find_spec("escalation") is not None:
        import escalation

        jobs.append(escalation.run)
    return jobs


class Worker:
    """The loop: lead (evaluate rules, run jobs) when we hold the lock; always send."""

    def __init__(self, services: Services, rules: list, lease: float = 60.0, send_timeout: float = 10.0,
                 poll: float = 0.5):  # fmt: skip
        self.services, self.poll = services, poll
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}"[:64]
        self.stop = threading.Event()
        storm = RateLimiter(services.limiter.storage, services.settings.alert_limits, "alerts")
        self.sender = Sender(services.engine, services.settings, make_backend(services.settings, send_timeout),
                             storm, self.worker_id, lease=lease)  # fmt: skip
        self.evaluator = alerting.Evaluator(services, rules, self.worker_id)
        self.leader = make_leader(services.engine)
        self.jobs = periodic_jobs()
        self.leading = False

    def run(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stop.set())
        interval = self.services.settings.alert_interval
        logger.info(
            "worker %s started: %d rule(s), every %gs", self.worker_id, len(self.evaluator.rules), interval
        )
        next_eval = next_jobs = 0.0
        while not self.stop.is_set():
            handled = 0
            try:
                leading = self.leader.acquire()
                if leading != self.leading:
                    logger.info(
                        "worker %s %s the rule evaluator",
                        self.worker_id,
                        "is now" if leading else "is no longer",
                    )
                    self.leading, next_eval, next_jobs = leading, 0.0, 0.0
                now = time.time()
                if leading and now >= next_eval:
                    next_eval = now + interval
                    self.evaluator.tick(now)
                if leading and now >= next_jobs:
                    next_jobs = now + min(interval, JOB_PERIOD)
                    self.run_jobs()
                handled = self.sender.step(self.stop)
            except Exception:
                logger.exception("worker loop error; continuing")
                self.stop.wait(min(5.0, interval))
            if not handled:
                self.stop.wait(self.poll)
        self.leader.release()
        logger.info("worker %s stopped cleanly", self.worker_id)

    def run_jobs(self) -> None:
        for job in self.jobs:
            try:
                job(self.services)
            except Exception:
                logger.exception("periodic job %s failed", getattr(job, "__module__", job))


@click.command("worker")
@click.option(
    "--lease", default=60.0, show_default=True, help="Seconds a claimed text is reserved for its sender."
)
@click.option("--send-timeout", default=10.0, show_default=True, help="Seconds to wait for the SMS provider.")
def worker_command(lease: float, send_timeout: float) -> None:
    """Evaluate alert rules and send queued texts until SIGTERM."""
    services = current_app.extensions["operator"]
    try:
        rules = alerting.load_rules(services)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    Worker(services, rules, lease=lease, send_timeout=min(send_timeout, lease / 2)).run()
