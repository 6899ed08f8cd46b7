"""`flask --app app worker`: evaluates alert rules and sends the outbox, outside gunicorn.

Run one or several (on one or many hosts): all of them send, one at a time evaluates rules and
runs the periodic jobs (escalation, webhook alert reminders, retention; see worker.leader).
SIGTERM or Ctrl-C: the text in flight is finished and recorded, claimed but unsent texts go
back to the queue, and the process exits 0.
"""

from __future__ import annotations

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
import config
from config import ConfigError
from incidents import escalation, records, reminders
from incidents.rules import Rule
from outbox.backends import make_backend
from outbox.sender import Sender
from rate_limiter import RateLimiter
from services import Services
from worker import retention
from worker.leader import make_leader

logger = logging.getLogger(__name__)

Job = Callable[[Services], object]
JOB_PERIOD = 15.0

# Periodic jobs run by the leader next to rule evaluation: a callable taking the process's
# Services, alone (run every min(ALERT_INTERVAL, JOB_PERIOD) seconds) or with its own period
# in seconds as `(job, period)`. A failing job is logged and retried next period.
PERIODIC_JOBS: list[Job | tuple[Job, float]] = [
    escalation.run,
    reminders.run,
    (retention.run, retention.PERIOD),
]


def periodic_jobs(default_period: float) -> list[tuple[Job, float]]:
    """PERIODIC_JOBS as (job, period) pairs."""
    return [entry if isinstance(entry, tuple) else (entry, default_period) for entry in PERIODIC_JOBS]


class Worker:
    """The loop: lead (evaluate rules, run jobs) when we hold the lock; always send."""

    def __init__(self, services: Services, rules: list[Rule], lease: float = 60.0, send_timeout: float = 10.0,
                 poll: float = 0.5):  # fmt: skip
        self.services, self.poll = services, poll
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}"[:64]
        self.stop = threading.Event()
        storm = RateLimiter(services.limiter.storage, services.settings.alert_limits, "alerts")
        self.sender = Sender(services.engine, services.settings, make_backend(services.settings, send_timeout),
                             storm, records, self.worker_id, lease=lease)  # fmt: skip
        self.evaluator = alerting.Evaluator(services, rules, self.worker_id)
        self.leader = make_leader(services.engine)
        self.jobs = periodic_jobs(min(services.settings.alert_interval, JOB_PERIOD))
        self.next_job_at = [0.0] * len(self.jobs)
        self.leading = False

    def run(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stop.set())
        interval = self.services.settings.alert_interval
        logger.info(
            "worker %s started: %d rule(s), every %gs", self.worker_id, len(self.evaluator.rules), interval
        )
        next_eval = 0.0
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
                    self.leading, next_eval = leading, 0.0
                    self.next_job_at = [0.0] * len(self.jobs)
                now = time.time()
                if leading and now >= next_eval:
                    next_eval = now + interval
                    self.evaluator.tick(now)
                if leading:
                    self.run_jobs(now)
                handled = self.sender.step(self.stop)
            except Exception:
                logger.exception("worker loop error; continuing")
                self.stop.wait(min(5.0, interval))
            if not handled:
                self.stop.wait(self.poll)
        self.leader.release()
        logger.info("worker %s stopped cleanly", self.worker_id)

    def run_jobs(self, now: float) -> None:
        """Run each periodic job whose period has passed."""
        for index, (job, period) in enumerate(self.jobs):
            if now < self.next_job_at[index]:
                continue
            self.next_job_at[index] = now + period
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
    services: Services = current_app.extensions["operator"]
    try:
        rules = alerting.load_rules(services)
    except ConfigError as exc:
        config.stop(exc)
    Worker(services, rules, lease=lease, send_timeout=min(send_timeout, lease / 2)).run()
