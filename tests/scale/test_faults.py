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
import subprocess
import sys
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import func, select

import alerting
from config import Settings
from core import db
from inbound.audit import messages
from inbound.routes import STORE_DOWN
from incidents import records
from incidents.rules import parse_rules
from outbox import queue
from outbox.sender import pacing
from tests.support.apps import app_with, with_settings
from tests.support.fakes.twilio_api import FakeTwilio
from tests.support.hosts import PrivatePostgres, PrivateRedis, network, postgres_on, wait_until
from tests.support.live_server import SignedClient, base_env, gunicorn
from tests.support.paths import REPO
from tests.support.phones import ADMIN, RESPONDER, TOKEN, Phone
from tests.support.prometheus_server import RECORDED, prometheus
from tests.support.workers import start_worker, stop_worker, worker_env

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
    """Threads calling `send` without pause until stopped; every result is kept."""

    def __init__(self, send: Callable[[], Any], threads: int = 2):
        self.send = send
        self.answers: list[Any] = []
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
            answer = self.send()
            with self.lock:
                self.answers.append(answer)

    def count(self) -> int:
        with self.lock:
            return len(self.answers)


def texter(client: SignedClient, timeout: float = 30) -> Callable[[], Answer]:
    """Text `help` from the admin's phone with a new MessageSid; the answer, or why none came."""

    def text() -> Answer:
        sid = "SM" + uuid.uuid4().hex
        try:
            response = client.post(ADMIN, "help", sid=sid, timeout=timeout)
        except requests.RequestException as exc:
            return Answer(sid, exc.__class__.__name__, None)
        return Answer(sid, response.status_code, reply_of(response))

    return text


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
    its database" line, never a 500 or a traceback, and an alert webhook gets 200 or a 503 that
    Alertmanager retries. Once it is back every text is answered; every text is in the message log
    with a final outcome (one caught between being stored and answered is closed as interrupted by
    the worker), every alert answered 200 is stored, and every page queued ends sent."""
    env = web_env(tmp_path, postgres.url, fake, ALERTMANAGER_TOKEN=WEBHOOK_TOKEN, ALERT_INTERVAL="1",
                  ALERT_LIMITS="1000 per minute", SMS_RATE="50")  # fmt: skip
    engine = db.make_engine(postgres.url)
    worker = start_worker(tmp_path, env)
    try:
        with gunicorn(tmp_path / "web", env, workers=2) as url:
            text = texter(SignedClient(url, TOKEN))
            with Load(text) as load, Load(lambda: fire_new(url), threads=1) as alerts:
                wait_until(lambda: load.count() >= 20, 30, "texts answered before the restart")
                postgres.stop()
                during = load.count()
                wait_until(lambda: load.count() >= during + 10, 30, "texts answered while PostgreSQL is down")
                postgres.start()
                back = load.count()
                wait_until(lambda: load.count() >= back + 40, 60, "texts answered after the restart")
            after = [text() for _ in range(10)]
        wait_until(lambda: stuck(engine) == 0, 90, "every text to have a final outcome")
        wait_until(lambda: not waiting(engine), 60, "every queued page to be sent")
    finally:
        stop_worker(worker)
    answers = load.answers + after
    statuses = Counter(a.status for a in answers)
    assert set(statuses) == {200}, f"every text got a TwiML answer: {statuses}"
    assert not [a.reply for a in answers if a.reply and INTERNAL in a.reply], "no internal error"
    assert [a for a in answers if a.reply == STORE_DOWN], (
        "texts during the outage were told the store is down"
    )
    assert all(a.reply and a.reply != STORE_DOWN for a in after), "after the restart every text runs"
    answered = [a.sid for a in answers if a.reply != STORE_DOWN]
    outcomes = outcomes_of(engine, answered)
    assert set(outcomes) == set(answered), "every text answered as usual is in the message log"
    assert set(outcomes.values()) == {"ok"}, Counter(outcomes.values())
    webhook = Counter(status for _, status in alerts.answers)
    assert set(webhook) <= {200, 503} and webhook[200], webhook
    with engine.connect() as conn:
        stored = set(conn.execute(select(records.alerts.c.name)).scalars())
    assert {name for name, status in alerts.answers if status == 200} <= stored


def fire_new(url: str) -> tuple[str, int | str]:
    """A new alert's name and what the webhook answered (or why it did not)."""
    name = "Fault" + uuid.uuid4().hex[:8]
    try:
        return name, fire(url, name).status_code
    except requests.RequestException as exc:
        return name, exc.__class__.__name__


def waiting(engine) -> int:
    """Outbox rows not finished yet: queued or claimed by a sender."""
    o = queue.outbox.c
    with engine.connect() as conn:
        return conn.execute(select(func.count()).where(o.status.in_(("queued", "sending")))).scalar_one()


@pytest.mark.parametrize("fault", ["killed", "frozen"])
def test_with_redis_killed_or_frozen_texts_are_answered_and_the_limit_counts_in_the_database(
    tmp_path, fake, fault
):
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


def test_a_rule_on_a_prometheus_that_goes_down_records_the_error_and_neither_resolves_nor_pages(
    tmp_path, settings
):
    """A firing rule whose Prometheus stops answering keeps its incident open (no false RESOLVED,
    no new ALERT), records the error in its state, and after five minutes of errors sends one
    "cannot evaluate" notice; nothing else is texted."""
    with ExitStack() as stack:
        now = 1_900_000_000.0
        with prometheus(tmp_path) as prom:
            changed = with_settings(
                settings, prometheus_url=prom.url, alert_interval=1.0, monitor_timeout=1.0
            )
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


WEBHOOK_TOKEN = "am-token-faults"


def fire(url: str, name: str) -> requests.Response:
    """An Alertmanager notification of one firing alert named `name`, as Alertmanager posts it."""
    alert = {"status": "firing", "labels": {"alertname": name, "instance": "web-1:9100", "severity": "page"},
             "annotations": {"summary": f"{name} is down"}, "startsAt": "2026-01-01T00:00:00Z",
             "endsAt": "0001-01-01T00:00:00Z", "fingerprint": name}  # fmt: skip
    body = {"version": "4", "groupKey": f'{{}}:{{alertname="{name}"}}', "status": "firing", "truncatedAlerts": 0,
            "commonLabels": alert["labels"], "commonAnnotations": alert["annotations"], "alerts": [alert]}  # fmt: skip
    headers = {"Authorization": f"Bearer {WEBHOOK_TOKEN}"}
    return requests.post(url + "/webhook/alertmanager", json=body, headers=headers, timeout=30)


def queue_texts(engine, bodies: list[str], kind: str = queue.Kind.REPLY) -> None:
    """Texts for the admin straight into the outbox, as a command's reply or a page queues them."""
    settings = Settings(twilio_auth_token=TOKEN)
    with engine.begin() as conn:
        for body in bodies:
            queue.enqueue(conn, ADMIN, body, kind, settings)


def outbox_rows(engine) -> list:
    with engine.connect() as conn:
        return conn.execute(select(queue.outbox).order_by(queue.outbox.c.id)).all()


def test_pages_queued_while_the_sms_provider_is_down_all_go_out_once_when_it_is_back(tmp_path, postgres):
    """The SMS provider answers 500, then refuses connections, while alerts arrive: every alert is
    accepted and stored, its pages wait and are retried, and once the provider is back each page
    reaches each person exactly once."""
    down = FakeTwilio(SID, TOKEN, mode="500").start()
    env = worker_env(
        tmp_path,
        down,
        postgres.url,
        ALERTMANAGER_TOKEN=WEBHOOK_TOKEN,
        ALERT_RECIPIENTS=f"{ADMIN},{RESPONDER}",
    )
    engine = db.make_engine(postgres.url)
    names = [f"Down{i:02d}" for i in range(10)]
    back = None
    worker = start_worker(tmp_path, env)
    try:
        with gunicorn(tmp_path / "web", env, workers=2) as url:
            accepted = [fire(url, name) for name in names]
        assert [a.status_code for a in accepted] == [200] * 10
        wait_until(lambda: down.requests >= 40, 60, "every page tried and retried against the 500s")
        # Retries back off from 2 s, doubling: a shorter outage than two minutes keeps the test short.
        down.stop()
        wait_until(lambda: any(r.error_code == "connection" for r in outbox_rows(engine)), 60,
                   "pages retried against the stopped provider")  # fmt: skip
        back = FakeTwilio(SID, TOKEN, port=down.port).start()
        wait_until(lambda: len(back.messages) >= 20, 120, "every page to go out once the provider is back")
        time.sleep(3)  # a second copy of any page would show up now
    finally:
        stop_worker(worker)
        if back is not None:
            back.stop()
    with engine.connect() as conn:
        stored = sorted(conn.execute(select(records.alerts.c.name)).scalars())
    assert stored == names, "every alert accepted is stored"
    rows = outbox_rows(engine)
    assert len(rows) == 20 and {r.status for r in rows} == {"sent"}, Counter(r.status for r in rows)
    assert min(r.attempts for r in rows) >= 2, "each page was retried until the provider took it"
    sent = Counter((m.to, m.body) for m in back.messages)
    assert sent == Counter((r.to_number, r.body) for r in rows), "each page went out once to each person"


def test_a_worker_killed_again_and_again_sends_every_queued_text_without_losing_any(tmp_path, postgres, fake):
    """The worker is killed with SIGKILL five times while 100 texts wait: each time a new worker
    takes over the dead one's claimed texts once their lease ends, every text goes out, and a text
    goes out twice only when a kill fell between the provider taking it and the store recording
    that (at most once per kill)."""
    env = worker_env(tmp_path, fake, postgres.url, SMS_RATE="20")
    engine = db.make_engine(postgres.url)
    bodies = [f"text {i:03d}" for i in range(100)]
    queue_texts(engine, bodies)
    kills = 5
    for _ in range(kills):
        seen = len(fake.messages)
        worker = start_lease_worker(tmp_path, env)
        try:
            wait_until(lambda seen=seen: len(fake.messages) >= seen + 5, 60, "the new worker to send")
        finally:
            worker.send_signal(signal.SIGKILL)
            worker.wait()
    assert len(set(fake.bodies())) < len(bodies), "the kills fell while texts were still waiting"
    worker = start_lease_worker(tmp_path, env)
    try:
        wait_until(lambda: set(fake.bodies()) == set(bodies), 90, "every text to be sent")
        wait_until(lambda: {r.status for r in outbox_rows(engine)} == {"sent"}, 30, "every row recorded")
    finally:
        assert stop_worker(worker) == 0
    sent = Counter(fake.bodies())
    twice = sum(n - 1 for n in sent.values())
    assert twice <= kills, f"{twice} texts went out twice after {kills} kills"
    assert {r.status for r in outbox_rows(engine)} == {"sent"}, "no row is left sending"


def test_a_worker_started_while_postgresql_is_down_waits_for_it_and_then_sends_what_is_queued(
    tmp_path, postgres, fake
):
    """A worker started (or restarted by its service manager) while PostgreSQL is down keeps
    running and says, in one line each time and without a traceback, that it cannot reach the
    store; once PostgreSQL is back the page queued before it went down goes out. PostgreSQL
    going down again under the running worker is met the same way."""
    env = worker_env(tmp_path, fake, postgres.url)
    engine = db.make_engine(postgres.url)
    queue_texts(engine, ["queued before the outage"])
    engine.dispose()
    postgres.stop()
    log = tmp_path / "worker.log"
    worker = start_worker(tmp_path, env)
    try:
        wait_until(lambda: worker.poll() is not None or log.read_text().count("store unreachable") >= 2,
                   60, "the worker to say twice that the store is unreachable")  # fmt: skip
        assert worker.poll() is None, "the worker is still running with its store down"
        postgres.start()
        wait_until(lambda: fake.bodies() == ["queued before the outage"], 60, "the queued page to go out")
        said = log.read_text().count("store unreachable")
        postgres.stop()
        wait_until(lambda: worker.poll() is not None or log.read_text().count("store unreachable") >= said + 2,
                   60, "the running worker to say the store is unreachable")  # fmt: skip
        assert worker.poll() is None, "the worker outlives the second outage"
        postgres.start()
        queue_texts(engine, ["queued after the outage"])
        wait_until(lambda: len(fake.bodies()) == 2, 60, "the second page to go out")
    finally:
        code = stop_worker(worker)
    assert code == 0
    assert fake.bodies() == ["queued before the outage", "queued after the outage"]
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]


def test_pages_a_worker_had_claimed_when_postgresql_went_down_go_out_once_as_soon_as_it_is_back(
    tmp_path, postgres, fake
):
    """PostgreSQL stops while the worker is partway through a batch: the page Twilio took while
    the store was down is recorded as sent, not sent again, and the pages the worker had claimed
    but not sent go out once PostgreSQL is back, not when their ten-minute claim runs out."""
    env = worker_env(tmp_path, fake, postgres.url, SMS_RATE="0.25")  # a page every 4 s
    engine = db.make_engine(postgres.url)
    bodies = [f"page {i}" for i in range(4)]
    queue_texts(engine, bodies, queue.Kind.ALERT)
    o = queue.outbox.c

    def second_page_booked() -> bool:
        with engine.connect() as conn:
            first = conn.execute(select(o.sent_at).where(o.body == bodies[0], o.status == "sent")).scalar()
            booked = conn.execute(select(pacing.c.next_at)).scalar()
        return first is not None and booked is not None and booked > first + 6

    log = tmp_path / "worker.log"
    worker = start_lease_worker(tmp_path, env, lease=600)
    try:
        wait_until(second_page_booked, 30, "the first page to be sent and the second to book its slot")
        engine.dispose()
        postgres.stop()  # the second page goes to Twilio when its slot comes, with the store down
        wait_until(lambda: worker.poll() is not None or "store unreachable" in log.read_text(), 30,
                   "the worker to find the store gone")  # fmt: skip
        wait_until(lambda: len(fake.bodies()) >= 2, 10, "the second page to reach Twilio")
        postgres.start()
        wait_until(lambda: not waiting(engine), 60, "every claimed page to be sent once the store is back")
        time.sleep(3)  # a second copy of any page would show up now
    finally:
        stop_worker(worker)
    assert Counter(fake.bodies()) == Counter(bodies), "each page went out exactly once"
    rows = outbox_rows(engine)
    assert {r.status for r in rows} == {"sent"} and all(r.provider_sid for r in rows)
    by_sid = {m.sid: m.body for m in fake.messages}
    assert {r.body: by_sid.get(r.provider_sid) for r in rows} == {b: b for b in bodies}, (
        "each row records the message Twilio took for it"
    )


def start_lease_worker(cwd: Path, env: dict[str, str], lease: float = 2):
    """A worker whose claims lapse after `lease` seconds (2: a killed one's texts are taken over quickly)."""
    log = open(cwd / "worker.log", "ab")  # noqa: SIM115 - the child holds it
    cmd = [sys.executable, "-m", "flask", "--app", "app", "worker", "--lease", f"{lease:g}"]
    return subprocess.Popen(cmd, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)


# Twilio gives up on a webhook after 15 s: a slower answer never reaches the phone.
TWILIO_WAIT = 15.0


def test_a_web_host_cut_off_from_its_store_tells_texters_so_in_time_and_recovers(tmp_path):
    """PostgreSQL's host drops off the network (packets vanish, nothing refuses): texts to the web
    host still get an answer inside Twilio's wait, the "cannot reach its database" line, and once
    the network is back every text runs again and is in the message log."""
    with network() as net:
        store = net.host("store")
        database_url = postgres_on(store, tmp_path)
        engine = db.make_engine(database_url)
        db.ensure_db(engine, True)
        web = net.host("web")
        fake = FakeTwilio(SID, TOKEN, host=net.address).start()
        try:
            env = web_env(tmp_path, database_url, fake, WEB_CONCURRENCY="2", LOG_DIR=str(tmp_path / "logs"))
            port = 8000
            env["PUBLIC_URL"] = f"http://{web.address}:{port}"
            cmd = [sys.executable, "-m", "gunicorn", "-c", str(REPO / "production.py")]
            cmd += ["-b", f"{web.address}:{port}", "app:create_app()"]
            web.start(cmd, tmp_path / "web.log", env, tmp_path)
            url = env["PUBLIC_URL"]
            wait_until(lambda: _answers(url + "/livez"), 60, "the web host")
            text = texter(SignedClient(url, TOKEN), timeout=TWILIO_WAIT)
            before = [text() for _ in range(6)]
            net.cut(store)
            during = [text() for _ in range(4)]
            net.cut(store, connected=True)
            wait_until(lambda: text().reply != STORE_DOWN, 60, "texts to run again")
            after = [text() for _ in range(6)]
            outcomes = outcomes_of(engine, [a.sid for a in before + after])
            left = stuck(engine)
        finally:
            fake.stop()
    assert all(a.status == 200 and a.reply not in (None, STORE_DOWN) for a in before + after), before + after
    assert [(a.status, a.reply) for a in during] == [(200, STORE_DOWN)] * 4, "answered in time, saying why"
    assert set(outcomes.values()) == {"ok"} and len(outcomes) == 12
    assert left == 0


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.RequestException:
        return False
