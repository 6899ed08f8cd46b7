"""Two hosts, each running the web service and the worker, sharing PostgreSQL and Redis on a third.

The hosts are network namespaces on a private bridge (tests/support/hosts.py); the Twilio fake
listens on this test process's own address on that bridge. Texts are signed for one public URL,
as Twilio signs them behind a load balancer, and posted to either host.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
import uuid
from collections import Counter

import pytest
import requests
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator

import alerting
from config import Settings
from core import db
from inbound.audit import messages
from outbox import queue
from tests.support.fakes.twilio_api import FakeTwilio
from tests.support.hosts import network, postgres_on, redis_on, wait_until
from tests.support.live_server import base_env
from tests.support.paths import REPO
from tests.support.phones import ADMIN, TOKEN

pytestmark = pytest.mark.slow

SID = "AC" + "1" * 32
PUBLIC_URL = "https://operator.example.com"
PORT = 8000
RULES = f"""
rules:
  - name: host_busy
    monitor: system
    query: cpu
    op: ">="
    threshold: 0
    recipients: ["{ADMIN}"]
    message: "cpu {{value}}% >= {{threshold}}%"
"""


class Cluster:
    def __init__(self, net, tmp_path, fake, rules: str = "rules: []\n", **extra: str):
        self.net, self.tmp = net, tmp_path
        store = net.host("store")
        self.database_url = postgres_on(store, tmp_path)
        self.redis_url = redis_on(store, tmp_path)
        self.engine = db.make_engine(self.database_url)
        config = tmp_path / "operator.yml"
        config.write_text(rules)
        self.env = base_env(
            tmp_path,
            TWILIO_AUTH_TOKEN=TOKEN,
            TWILIO_ACCOUNT_SID=SID,
            TWILIO_FROM_NUMBER="+15005550006",
            SMS_BACKEND="twilio",
            TWILIO_API_URL=fake.url,
            AUTHORIZED_NUMBERS=f"{ADMIN}:admin",
            DATABASE_URL=self.database_url,
            REDIS_URL=self.redis_url,
            PUBLIC_URL=PUBLIC_URL,
            OPERATOR_CONFIG=str(config),
            ALERT_INTERVAL="1",
            ALERT_LIMITS="1000 per minute",
            SMS_RATE="50",
            WEB_CONCURRENCY="2",
            **extra,
        )
        db.ensure_db(self.engine, True)  # the schema once, before four processes race to make it
        self.webs, self.workers = {}, {}
        for name in ("a", "b"):
            host = net.host(name)
            (tmp_path / name).mkdir()
            env = {**self.env, "LOG_DIR": str(tmp_path / name / "logs")}
            gunicorn = [sys.executable, "-m", "gunicorn", "-c", str(REPO / "production.py")]
            gunicorn += ["-b", f"{host.address}:{PORT}", "app:create_app()"]
            host.start(gunicorn, tmp_path / name / "web.log", env, tmp_path / name)
            self.workers[name] = self.start_worker(name)
            self.webs[name] = f"http://{host.address}:{PORT}"
        for name, url in self.webs.items():
            wait_until(lambda url=url: _answers(url + "/livez"), 60, f"the web service on host {name}")

    def start_worker(self, name: str):
        env = {**self.env, "LOG_DIR": str(self.tmp / name / "logs")}
        cmd = [sys.executable, "-m", "flask", "--app", "app", "worker"]
        return self.net.hosts[name].start(cmd, self.tmp / name / "worker.log", env, self.tmp / name)

    def text(self, host: str, body: str, sid: str | None = None) -> requests.Response:
        params = {
            "MessageSid": sid or "SM" + uuid.uuid4().hex,
            "AccountSid": SID,
            "From": ADMIN,
            "To": "+15005550006",
            "Body": body,
            "NumMedia": "0",
        }
        signature = RequestValidator(TOKEN).compute_signature(PUBLIC_URL + "/sms", params)
        headers = {"X-Twilio-Signature": signature}
        return requests.post(self.webs[host] + "/sms", data=params, headers=headers, timeout=30)

    def outcomes(self) -> Counter:
        with self.engine.connect() as conn:
            rows = conn.execute(select(messages.c.outcome, func.count()).group_by(messages.c.outcome))
            return Counter({outcome: n for outcome, n in rows})


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.RequestException:
        return False


@pytest.fixture
def net():
    with network() as net:
        yield net


@pytest.fixture
def fake(net):
    fake = FakeTwilio(SID, TOKEN, host=net.address).start()
    yield fake
    fake.stop()


def test_the_rate_limit_counts_texts_to_both_hosts_against_one_budget(net, tmp_path, fake):
    cluster = Cluster(net, tmp_path, fake, RATE_LIMIT="6 per 5 minutes")
    for i in range(14):
        assert cluster.text("ab"[i % 2], "help").status_code == 200
    outcomes = cluster.outcomes()
    assert outcomes["ok"] == 6, f"exactly the limit ran across both hosts: {outcomes}"
    assert outcomes["rate_limited"] == 8


def test_one_message_sid_posted_to_both_hosts_at_once_runs_once(net, tmp_path, fake):
    cluster = Cluster(net, tmp_path, fake, RATE_LIMIT="1000 per minute")
    sids = ["SM" + uuid.uuid4().hex for _ in range(10)]
    answers: list[requests.Response] = []
    for sid in sids:
        both = [
            threading.Thread(target=lambda h=h, sid=sid: answers.append(cluster.text(h, "help", sid)))
            for h in "ab"
        ]
        for thread in both:
            thread.start()
        for thread in both:
            thread.join()
    assert [a.status_code for a in answers] == [200] * 20
    with cluster.engine.connect() as conn:
        ran = conn.execute(select(messages.c.message_sid).where(messages.c.outcome == "ok")).scalars().all()
    assert sorted(ran) == sorted(sids), "each MessageSid ran exactly once across the two hosts"
    assert cluster.outcomes()["duplicate"] == 10


def test_two_workers_on_two_hosts_send_every_queued_text_exactly_once(net, tmp_path, fake):
    cluster = Cluster(net, tmp_path, fake)
    bodies = [f"page {i:03d}" for i in range(120)]
    with cluster.engine.begin() as conn:
        for body in bodies:
            queue.enqueue(conn, ADMIN, body, queue.Kind.REPLY, _settings(cluster))
    wait_until(lambda: len(fake.bodies()) >= len(bodies), 60, "every queued text to be sent")
    time.sleep(2)  # a second copy would show up now
    assert sorted(fake.bodies()) == bodies, "every text sent once, none twice"
    with cluster.engine.connect() as conn:
        statuses = conn.execute(select(queue.outbox.c.status)).scalars().all()
    assert set(statuses) == {"sent"}
    senders = {name for name in "ab" if "sent" in (tmp_path / name / "logs" / "operator.log").read_text()}
    assert senders == {"a", "b"}, "both hosts' workers took part in sending"


def evaluator(cluster: Cluster) -> tuple[str, float] | None:
    """(who, when) of the last rule evaluation."""
    with cluster.engine.connect() as conn:
        row = conn.execute(
            select(alerting.rule_states.c.evaluated_by, alerting.rule_states.c.evaluated_at)
        ).first()
    return (row.evaluated_by, row.evaluated_at) if row else None


def the_evaluator(cluster: Cluster, seconds: float = 5.0) -> str:
    """The host whose worker alone evaluated rules for `seconds`."""
    wait_until(lambda: evaluator(cluster) is not None, 30, "a first evaluation")
    seen = set()
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        seen.add(evaluator(cluster)[0])
        time.sleep(0.2)
    assert len(seen) == 1, f"exactly one evaluator across both hosts, saw {seen}"
    pid = int(seen.pop().rsplit(":", 1)[1])
    [host] = [name for name, proc in cluster.workers.items() if proc.pid == pid]
    return host


def test_one_host_evaluates_rules_and_the_other_takes_over_after_kill_9(net, tmp_path, fake):
    cluster = Cluster(net, tmp_path, fake, rules=RULES)
    leader = the_evaluator(cluster)
    follower = cluster.workers["b" if leader == "a" else "a"]
    cluster.workers[leader].send_signal(signal.SIGKILL)
    cluster.workers[leader].wait()
    killed_at = time.time()
    wait_until(lambda: evaluator(cluster)[0].endswith(f":{follower.pid}"), 15, "the other host to take over")
    assert evaluator(cluster)[1] - killed_at <= 3.0, "the other host evaluates within a few seconds"
    assert len(fake.bodies()) == 1, "the new evaluator does not page the open alert again"


def test_a_leader_cut_off_from_the_network_is_replaced_and_rejoins_as_a_follower(net, tmp_path, fake):
    cluster = Cluster(net, tmp_path, fake, rules=RULES)
    leader = the_evaluator(cluster)
    other = "b" if leader == "a" else "a"
    net.cut(net.hosts[leader])
    cut_at = time.time()
    wait_until(
        lambda: evaluator(cluster)[0].endswith(f":{cluster.workers[other].pid}"),
        40,
        "the connected host to take over from the unreachable one",
    )
    took_over = evaluator(cluster)[1] - cut_at
    net.cut(net.hosts[leader], connected=True)
    time.sleep(3)  # the old leader is back: it must find it no longer leads
    assert the_evaluator(cluster) == other, "after the network returns there is still one evaluator"
    assert took_over <= 30, f"took over {took_over:.0f}s after the cut"
    assert len(fake.bodies()) == 1, "the open alert is not paged again by either host"


def _settings(cluster: Cluster) -> Settings:
    return Settings(twilio_auth_token=TOKEN, database_url=cluster.database_url, log_dir=str(cluster.tmp))
