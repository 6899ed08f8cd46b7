"""Faults under load: each test breaks one real server while texts and pages keep coming.

Every server here is the test's own (a private PostgreSQL cluster and redis-server on loopback,
tests/support/hosts.py; a real Prometheus; the Twilio fake), so stopping or freezing one never
touches the machine's shared services. Each test states what a user notices in its docstring and
then checks in the store that nothing was lost: every text answered has its `messages` row with a
final outcome, every queued outbox row ends sent, failed or folded (none left `sending`).
"""

from __future__ import annotations

import signal
import socket
import sys
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from sqlalchemy import func, select

import alerting
from core import db
from incidents import records
from incidents.rules import parse_rules
from inbound.audit import messages
from inbound.routes import STORE_DOWN
from outbox import queue
from tests.support.apps import app_with, with_settings
from tests.support.fakes.twilio_api import FakeTwilio
from tests.support.hosts import PrivatePostgres, PrivateRedis, wait_until
from tests.support.live_server import SignedClient, base_env, gunicorn
from tests.support.phones import ADMIN, RESPONDER, TOKEN, Phone
from tests.support.prometheus_server import RECORDED, prometheus

pytestmark = pytest.mark.slow

SID = "AC" + "1" * 32
INTERNAL = "internal error"


@pytest.fixture
def postgres(tmp_path) -> Iterator[PrivatePostgres]:
    server = PrivatePostgres(tmp_path)
    try:
        db.ensure_db(db.make_engine(server.url), True)  # the schema once, before the processes race
        yield server
    finally:
        server.close()


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    fake = FakeTwilio(SID, TOKEN).start()
    yield fake
    fake.stop()


def web_env(tmp: Path, database_url: str, fake: FakeTwilio, **extra: str) -> dict[str, str]:
    defaults = dict(
        TWILIO_AUTH_TOKEN=TOKEN,
        TWILIO_ACCOUNT_SID=SID,
        TWILIO_FROM_NUMBER="+15005550006",
        SMS_BACKEND="twilio",
        TWILIO_API_URL=fake.url,
        AUTHORIZED_NUMBERS=f"{ADMIN}:admin",
        DATABASE_URL=database_url,
        RATE_LIMIT="100000 per minute",
    )
    return base_env(tmp, **{**defaults, **extra})


@dataclass
class Answer:
    sid: str
    status: int | str  # the HTTP status, or the exception's name when no answer came
    reply: str | None


def reply_of(response: requests.Response) -> str | None:
    try:
        found = [m.text or "" for m in ET.fromstring(response.text).iter("Message")]
    except ET.ParseError:
        return response.text[:200]
    return found[0] if found else None


class Load:
    """Threads texting `help` without pause until stopped; every answer is kept."""

    def __init__(self, client: SignedClient, threads: int = 2, body: str = "help"):
        self.client, self.body = client, body
        self.answers: list[Answer] = []
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.done.set()
        for thread in self.threads:
            thread.join(timeout=60)

    def _run(self) -> None:
        while not self.done.is_set():
            answer = self.text()
            with self.lock:
                self.answers.append(answer)

    def text(self) -> Answer:
        sid = "SM" + uuid.uuid4().hex
        try:
            response = self.client.post(ADMIN, self.body, sid=sid, timeout=30)
        except requests.RequestException as exc:
            return Answer(sid, exc.__class__.__name__, None)
        return Answer(sid, response.status_code, reply_of(response))

    def count(self) -> int:
        with self.lock:
            return len(self.answers)


def outcomes_of(engine, sids: list[str]) -> dict[str, str]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(messages.c.message_sid, messages.c.outcome).where(messages.c.message_sid.in_(sids))
        )
        return {sid: outcome for sid, outcome in rows}


def stuck(engine) -> int:
    """Texts whose row never got a final outcome."""
    with engine.connect() as conn:
        return conn.execute(select(func.count()).where(messages.c.outcome == "processing")).scalar_one()


def test_texts_during_a_postgresql_restart_are_told_it_is_down_and_none_accepted_is_lost(
    tmp_path, postgres, fake
):
    """While PostgreSQL restarts, a text is answered either as usual or with the one "cannot reach
    its database" line, never a 500 or a traceback; once it is back every text is answered, and every
    text answered as usual is in the message log with its outcome."""
    env = web_env(tmp_path, postgres.url, fake)
    engine = db.make_engine(postgres.url)
    with gunicorn(tmp_path, env, workers=2) as url:
        client = SignedClient(url, TOKEN)
        with Load(client) as load:
            wait_until(lambda: load.count() >= 20, 30, "texts answered before the restart")
            postgres.stop()
            during = load.count()
            wait_until(lambda: load.count() >= during + 10, 30, "texts answered while PostgreSQL is down")
            postgres.start()
            back = load.count()
            wait_until(lambda: load.count() >= back + 40, 60, "texts answered after the restart")
        after = [Load(client).text() for _ in range(10)]
    answers = load.answers + after
    statuses = Counter(a.status for a in answers)
    assert set(statuses) == {200}, f"every text got a TwiML answer: {statuses}"
    assert not [a.reply for a in answers if a.reply and INTERNAL in a.reply], "no internal error"
    told_down = [a for a in answers if a.reply == STORE_DOWN]
    assert told_down, "texts during the outage were told the store is down"
    assert all(a.reply and a.reply != STORE_DOWN for a in after), "after the restart every text runs"
    answered = [a.sid for a in answers if a.reply != STORE_DOWN]
    outcomes = outcomes_of(engine, answered)
    assert set(outcomes) == set(answered), "every text answered as usual is in the message log"
    assert set(outcomes.values()) == {"ok"}, Counter(outcomes.values())
    assert stuck(engine) == 0, "no text is left without a final outcome"


@pytest.mark.parametrize("fault", ["killed", "frozen"])
def test_with_redis_killed_or_frozen_texts_are_answered_and_the_limit_counts_in_the_database(tmp_path, fake, fault):
    """Redis dies (or hangs, port open and silent) while texts arrive: every text is still answered
    as usual, the per-number limit still holds (counted in the database instead, which the log and
    /metrics say), and every text is in the message log."""
    redis = PrivateRedis(tmp_path)
    try:
        env = web_env(tmp_path, f"sqlite:///{tmp_path}/operator.db", fake, REDIS_URL=redis.url,
                      RATE_LIMIT="5 per 5 minutes", AUTHORIZED_NUMBERS=f"{ADMIN}:admin,{RESPONDER}:responder")  # fmt: skip
        with gunicorn(tmp_path, env, workers=2) as url:
            client = SignedClient(url, TOKEN)
            before = [client.post(ADMIN, "help") for _ in range(2)]
            assert redis_keys(redis), "the limit counts in Redis while it answers"
            redis.kill() if fault == "killed" else redis.freeze()
            sids = ["SM" + uuid.uuid4().hex for _ in range(8)]
            during = [client.post(RESPONDER, "help", sid=sid) for sid in sids]
            metrics = requests.get(url + "/metrics", timeout=10).text
        engine = db.make_engine(env["DATABASE_URL"])
        outcomes = outcomes_of(engine, sids)
    finally:
        redis.close()
    assert [r.status_code for r in before + during] == [200] * 10
    replies = [reply_of(r) for r in during]
    assert all(reply and INTERNAL not in reply for reply in replies[:6]), replies
    assert "Query limit reached" in replies[5], "the sixth query in the window is refused"
    assert [outcomes.get(sid) for sid in sids] == ["ok"] * 5 + ["rate_limited"] * 3, "the limit held"
    log = (tmp_path / "logs" / "operator.log").read_text()
    assert "rate-limit store failed" in log and "counting in the database" in log
    assert fallback_count(metrics) >= 8, "every text counted in the database is counted in /metrics"
    assert stuck(engine) == 0


def redis_keys(redis: PrivateRedis) -> list[str]:
    import redis as redis_py

    client = redis_py.Redis.from_url(redis.url, socket_timeout=2)
    try:
        return client.keys("*")
    finally:
        client.close()


def fallback_count(metrics: str) -> float:
    for line in metrics.splitlines():
        if line.startswith("operator_rate_limit_fallback_total"):
            return float(line.split()[-1])
    return 0.0


@pytest.fixture
def prometheus_gone(tmp_path) -> Iterator[dict[str, str]]:
    """The URL of a real Prometheus that was stopped, and of one that accepts and never answers."""
    with prometheus(tmp_path) as prom:
        stopped = prom.url
    hung = socket.socket()
    hung.bind(("127.0.0.1", 0))
    hung.listen(64)
    try:
        yield {"stopped": stopped, "hung": f"http://127.0.0.1:{hung.getsockname()[1]}"}
    finally:
        hung.close()


@pytest.mark.parametrize("fault", ["stopped", "hung"])
def test_with_prometheus_down_status_and_metrics_say_it_cannot_be_reached(settings, prometheus_gone, fault):
    """`status` and `metrics cpu` answer within the monitor timeout with a line naming Prometheus
    as unreachable (or timed out), and the other monitors still report in the same reply."""
    changed = with_settings(settings, prometheus_url=prometheus_gone[fault], monitor_timeout=1.0)
    with app_with(changed) as app:
        phone = Phone(app.test_client())
        status, cpu = phone.text("status"), phone.text("metrics cpu")
        engine = app.extensions["operator"].engine
        assert stuck(engine) == 0
    reason = "unreachable: connection refused" if fault == "stopped" else "timeout after 1s"
    assert f"prom ERROR {reason}" in status and "sys " in status, status
    assert cpu == f"prom ERROR {reason}"


RULE = [{"name": "answer_high", "monitor": "prometheus", "query": RECORDED, "op": ">", "threshold": 40,
         "recipients": [ADMIN], "message": "answer {value}", "error_notice_after": "5m"}]  # fmt: skip


def test_a_rule_on_a_prometheus_that_goes_down_records_the_error_and_neither_resolves_nor_pages(tmp_path, settings):
    """A firing rule whose Prometheus stops answering keeps its incident open (no false RESOLVED,
    no new ALERT), records the error in its state, and after five minutes of errors sends one
    "cannot evaluate" notice; nothing else is texted."""
    with ExitStack() as stack:
        now = 1_900_000_000.0
        with prometheus(tmp_path) as prom:
            changed = with_settings(settings, prometheus_url=prom.url, alert_interval=1.0, monitor_timeout=1.0)
            services = stack.enter_context(app_with(changed)).extensions["operator"]
            evaluator = alerting.Evaluator(services, parse_rules(RULE, services.settings, services.monitors))
            for _ in range(5):
                evaluator.tick(now)
                now += 1.0
            assert texts(services) == ["ALERT #1: answer 42"]
        for _ in range(7 * 60):  # seven minutes of one-second intervals with Prometheus gone
            evaluator.tick(now)
            now += 1.0
        with services.engine.connect() as conn:
            state = conn.execute(select(alerting.rule_states)).one()
            alert = conn.execute(select(records.alerts)).one()
        sent = texts(services)
    assert len(sent) == 2 and sent[1].startswith("Cannot evaluate rule answer_high for 5m:"), sent
    assert "unreachable" in sent[1] and "unreachable" in state.last_error
    assert alert.status == "firing", "the incident stays open while its rule cannot be evaluated"


def texts(services) -> list[str]:
    o = queue.outbox.c
    with services.engine.connect() as conn:
        return list(conn.execute(select(o.body).where(o.to_number == ADMIN).order_by(o.id)).scalars())
