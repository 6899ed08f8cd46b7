"""`flask --app app worker`: evaluates alert rules and sends the outbox, outside gunicorn.

Run one or several (on one or many hosts): all of them send and record a heartbeat
(worker.liveness); one at a time evaluates rules and runs the periodic jobs (escalation, webhook
alert reminders, silent heartbeats, retention, texts left unanswered; see worker.leader).
SIGTERM or Ctrl-C: the text in flight is finished and recorded, claimed but unsent texts go
back to the queue, and the process exits 0. SIGHUP, or any change to the rules file, reloads the
rules; a file with a mistake keeps the last good ones (incidents.rulefile) and stops nothing.
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
from core import db
from heartbeats import watch
from inbound import pipeline
from incidents import escalation, paging, records, reminders
from incidents.rulefile import RuleFile
from logging_config import show_console
from oncall import escalation as team_escalation
from oncall import feeds, handoffs, routing
from outbox.backends import make_backend
from outbox.sender import Sender
from rate_limiter import RateLimiter
from services import Services
from worker import liveness, retention
from worker.leader import make_leader

logger = logging.getLogger(__name__)

Job = Callable[[Services], object]
JOB_PERIOD = 15.0

# Periodic jobs run by the leader next to rule evaluation: a callable taking the process's
# Services, alone (run every min(ALERT_INTERVAL, JOB_PERIOD) seconds) or with its own period
# in seconds as `(job, period)`. A failing job is logged and retried next period.
PERIODIC_JOBS: list[Job | tuple[Job, float]] = [
    routing.presort_open,  # first: team patterns are matched here, outside the jobs' transactions
    escalation.run,
    team_escalation.run,
    handoffs.run,
    (feeds.run, feeds.PERIOD),
    reminders.run,
    paging.release_ended_windows,
    watch.run,
    (retention.run, retention.PERIOD),
    pipeline.close_interrupted,
]


def periodic_jobs(default_period: float) -> list[tuple[Job, float]]:
    """PERIODIC_JOBS as (job, period) pairs."""
    return [entry if isinstance(entry, tuple) else (entry, default_period) for entry in PERIODIC_JOBS]


class Worker:
    """The loop: lead (evaluate rules, run jobs) when we hold the lock; always send."""

    def __init__(
        self, services: Services, lease: float = 60.0, send_timeout: float = 10.0, poll: float = 0.5
    ):
        self.services, self.poll = services, poll
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}"[:64]
        self.stop = threading.Event()
        self.reload = threading.Event()
        self.rule_file = RuleFile(services)
        limiter = services.limiter
        storm = RateLimiter(
            limiter.storage, services.settings.alert_limits, "alerts", fallback=limiter.fallback
        )
        self.sender = Sender(services.engine, services.settings, make_backend(services.settings, send_timeout),
                             storm, records, self.worker_id, lease=lease)  # fmt: skip
        # The rules are first read inside the loop, which outlasts a store that is down at start.
        self.evaluator = alerting.Evaluator(services, None, self.worker_id)
        self.rules_read = False
        self.leader = make_leader(services.engine)
        self.jobs = periodic_jobs(min(services.settings.alert_interval, JOB_PERIOD))
        self.next_job_at = [0.0] * len(self.jobs)
        self.leading = False
        self.started_at, self.next_beat = time.time(), 0.0

    def run(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stop.set())
        signal.signal(signal.SIGHUP, lambda *_: self.reload.set())
        settings = self.services.settings
        interval = settings.alert_interval
        pause = min(5.0, interval)  # between tries while the store or a step fails
        logger.info("worker %s started: rules every %gs", self.worker_id, interval)
        next_eval = 0.0
        while not self.stop.is_set():
            handled = 0
            try:
                if not db.ensure_db(self.services.engine, settings.migrate_on_start):
                    self.stop.wait(pause)  # ensure_db said why, in one line
                    continue
                self.beat()
                leading = self.leader.acquire()
                if leading != self.leading:
                    logger.info(
                        "worker %s %s the rule evaluator",
                        self.worker_id,
                        "is now" if leading else "is no longer",
                    )
                    self.leading, next_eval = leading, 0.0
                    self.next_job_at = [0.0] * len(self.jobs)
                # Every worker reads the rules once; a follower's read stands until it leads:
                # changed() compares with that read.
                if not self.rules_read or (leading and (self.reload.is_set() or self.rule_file.changed())):
                    self.evaluator.use(self.rule_file.load().rules)
                    self.rules_read = True
                    self.reload.clear()
                    next_eval = 0.0  # new rules are evaluated at once
                now = time.time()
                if leading and now >= next_eval:
                    next_eval = now + interval
                    self.evaluator.tick(now)
                if leading:
                    self.run_jobs(now)
                handled = self.sender.step(self.stop)
            except db.UNREACHABLE as exc:
                # The store went away: one line each try, as the web's "store unreachable" is.
                logger.error("store unreachable, worker waiting: %s", exc.__class__.__name__)
                self.stop.wait(pause)
            except Exception:
                logger.exception("worker loop error; continuing")
                self.stop.wait(pause)
            if not handled:
                self.stop.wait(self.poll)
        try:
            self.sender.recover()  # a store failure's leftovers, if the store is back
        except Exception as exc:  # noqa: BLE001 - stopping must still let go of the evaluator lock
            logger.error("claimed texts not handed back at stop, they wait out their lease: %s",
                         exc.__class__.__name__, exc_info=not isinstance(exc, db.UNREACHABLE))  # fmt: skip
        self.leader.release()
        logger.info("worker %s stopped cleanly", self.worker_id)

    def beat(self) -> None:
        """Tell /healthz the loop is turning, every liveness.PERIOD."""
        now = time.time()
        if now < self.next_beat:
            return
        with self.services.engine.begin() as conn:
            liveness.beat(conn, self.worker_id, self.started_at, now)
        self.next_beat = now + liveness.PERIOD

    def run_jobs(self, now: float) -> None:
        """Run each periodic job whose period has passed."""
        for index, (job, period) in enumerate(self.jobs):
            if now < self.next_job_at[index]:
                continue
            self.next_job_at[index] = now + period
            try:
                job(self.services)
            except db.UNREACHABLE:
                raise  # the loop waits for the store; the other jobs would fail the same way
            except Exception:
                logger.exception("periodic job %s failed", getattr(job, "__module__", job))


@click.command("worker")
@click.option(
    "--lease", default=60.0, show_default=True, help="Seconds a claimed text is reserved for its sender."
)
@click.option("--send-timeout", default=10.0, show_default=True, help="Seconds to wait for the SMS provider.")
def worker_command(lease: float, send_timeout: float) -> None:
    """Evaluate alert rules and send queued texts until SIGTERM."""
    # A long-running process: its console is its log, start-up lines included.
    show_console(held=True)
    services: Services = current_app.extensions["operator"]
    Worker(services, lease=lease, send_timeout=min(send_timeout, lease / 2)).run()
