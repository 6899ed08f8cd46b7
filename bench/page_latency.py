"""How fast a page reaches the SMS provider: webhook accepted -> API call, and rule breach -> API call.

Runs the production gunicorn config and one `flask --app app worker` against the Twilio fake
(tests/support/fakes/twilio_api.py, a real socket that stamps each Messages API call as it
arrives). Webhook latency: N Alertmanager notifications, each a new alert, posted one at a time at
random gaps; from the moment the webhook answered 200 (accepted means stored) to the fake's stamp.
Rule latency: a rule on the custom API monitor (tests/support/fakes/custom_api.py) whose value
the script flips over the threshold, then back. Two figures: from the evaluation that saw the
breach (its page's `created_at` in the outbox) to the fake's stamp, which is Operator's own
latency and the one judged against the target; and from the flip to the stamp, which adds the
wait for the next evaluation (up to ALERT_INTERVAL, 1 s here: a setting, not a cost). Storm control
is lifted (ALERT_LIMITS) so each breach's recovery notice goes out and ends its round.

    python bench/page_latency.py [--store sqlite|postgres] [--alerts 100] [--breaches 20]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests
from sqlalchemy import Engine, text

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from core import db  # noqa: E402
from tests.support.fakes.custom_api import TOKEN as API_TOKEN  # noqa: E402
from tests.support.fakes.custom_api import FakeCustomApi  # noqa: E402
from tests.support.fakes.twilio_api import FakeTwilio  # noqa: E402
from tests.support.live_server import base_env, gunicorn  # noqa: E402
from tests.support.servers import fresh_postgres_database  # noqa: E402
from tests.support.workers import start_worker, stop_worker  # noqa: E402

SID = "AC" + "2" * 32
TOKEN = "bench-auth-token-0123456789abcdef"
HOOK_TOKEN = "bench-webhook-token"
NUMBER = "+15555550100"
TARGET_P99 = 1.0
RULES = f"""
api:
  orders:
    path: /stats/orders
    fields:
      queue: queue.depth
rules:
  - name: orders_backlog
    monitor: api
    query: orders.queue
    op: ">"
    threshold: 100
    recipients: ["{NUMBER}"]
    message: "backlog {{value}}"
"""


def notification(name: str) -> dict:
    alert = {
        "status": "firing",
        "labels": {"alertname": name, "instance": "db-1:9100", "severity": "critical"},
        "annotations": {"summary": f"{name} on db-1"},
        "startsAt": "2026-01-01T00:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "fingerprint": name,
    }
    return {
        "version": "4",
        "groupKey": f'{{}}:{{alertname="{name}"}}',
        "status": "firing",
        "truncatedAlerts": 0,
        "commonLabels": {"alertname": name},
        "commonAnnotations": {},
        "alerts": [alert],
    }


def wait_for_text(fake: FakeTwilio, needle: str, timeout: float = 30.0) -> float:
    """The fake's arrival stamp of the first text containing `needle`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with fake.lock:
            for sent in fake.messages:
                if needle in sent.body:
                    return sent.at
        time.sleep(0.005)
    raise SystemExit(f"no text containing {needle!r} within {timeout}s")


def paged_at(engine: Engine, needle: str) -> float:
    """When the evaluation that saw a breach queued its page (the outbox row's `created_at`)."""
    with engine.connect() as conn:
        query = text("SELECT created_at FROM outbox WHERE body LIKE :needle ORDER BY id LIMIT 1")
        return float(conn.execute(query, {"needle": f"%{needle}%"}).scalar_one())


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


def percentiles(values: list[float]) -> str:
    ordered = sorted(values)
    return (
        f"p50 {statistics.median(ordered) * 1000:6.0f} ms, p99 {p99(ordered) * 1000:6.0f} ms, "
        f"max {ordered[-1] * 1000:6.0f} ms"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--alerts", type=int, default=100)
    parser.add_argument("--breaches", type=int, default=20)
    args = parser.parse_args()
    drop = None
    with tempfile.TemporaryDirectory(prefix="operator-latency-") as tmp_name:
        tmp = Path(tmp_name)
        database_url = f"sqlite:///{tmp}/operator.db"
        if args.store == "postgres":
            database_url, drop = fresh_postgres_database()
        (tmp / "operator.yml").write_text(RULES)
        fake = FakeTwilio(SID, TOKEN).start()
        api = FakeCustomApi().start()
        api.routes["/stats/orders"] = (200, {"queue": {"depth": 0}})
        env = base_env(
            tmp,
            TWILIO_AUTH_TOKEN=TOKEN,
            TWILIO_ACCOUNT_SID=SID,
            TWILIO_FROM_NUMBER="+15005550006",
            SMS_BACKEND="twilio",
            TWILIO_API_URL=fake.url,
            AUTHORIZED_NUMBERS=f"{NUMBER}:admin",
            ALERTMANAGER_TOKEN=HOOK_TOKEN,
            DATABASE_URL=database_url,
            OPERATOR_CONFIG=str(tmp / "operator.yml"),
            CUSTOM_API_URL=api.url,
            CUSTOM_API_TOKEN=API_TOKEN,
            ALERT_INTERVAL="1",
            SMS_RATE="50",
            RECOVERY_DELAY="0s",
            # Storm control would fold the recovery notices into digests after the webhook burst.
            ALERT_LIMITS="10000 per minute",
        )
        worker = start_worker(tmp, env)
        store = db.make_engine(database_url)
        try:
            with gunicorn(tmp, env, workers=2) as url:
                session = requests.Session()
                hook = []
                for i in range(args.alerts):
                    time.sleep(random.uniform(0.05, 0.4))
                    name = f"Bench{i:04d}"
                    response = session.post(
                        url + "/webhook/alertmanager",
                        json=notification(name),
                        headers={"Authorization": f"Bearer {HOOK_TOKEN}"},
                        timeout=10,
                    )
                    accepted = time.time()
                    if response.status_code != 200:
                        raise SystemExit(f"webhook answered {response.status_code}: {response.text}")
                    hook.append(wait_for_text(fake, name) - accepted)
                rule, evaluated = [], []
                for i in range(args.breaches):
                    before = len(fake.messages)
                    api.routes["/stats/orders"] = (200, {"queue": {"depth": 500 + i}})
                    flipped = time.time()
                    called = wait_for_text(fake, f"backlog {500 + i}")
                    rule.append(called - flipped)
                    evaluated.append(called - paged_at(store, f"backlog {500 + i}"))
                    api.routes["/stats/orders"] = (200, {"queue": {"depth": 0}})
                    # Its recovery notice, then a quiet spell before the next breach.
                    deadline = time.monotonic() + 30
                    while len(fake.messages) < before + 2 and time.monotonic() < deadline:
                        time.sleep(0.05)
                    time.sleep(random.uniform(0.5, 1.5))
        finally:
            store.dispose()
            stop_worker(worker)
            fake.stop()
            api.stop()
            if drop:
                drop()
    print(f"store {args.store}; gunicorn 2 workers + 1 worker process; Twilio fake on loopback")
    print(f"webhook accepted -> SMS API call ({len(hook)} new alerts): {percentiles(hook)}")
    print(f"rule evaluation -> SMS API call ({len(evaluated)} breaches): {percentiles(evaluated)}")
    print(
        f"rule breach -> SMS API call (the above + the wait for the next evaluation, ALERT_INTERVAL=1s): {percentiles(rule)}"
    )
    worst = max(p99(hook), p99(evaluated))
    print(f"p99 target < {TARGET_P99:g} s: {'OK' if worst < TARGET_P99 else 'ABOVE TARGET'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
