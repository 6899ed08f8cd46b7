"""The dashboard with 1,000,000 stored messages and 100,000 alerts, on SQLite and PostgreSQL.

Seeds the volume with bulk inserts (a year of texts, 1% of alerts still firing, each alert with
its webhook event and two pages in the outbox), then times every page server-side through the
Flask test client: the median of 5 requests after one warm-up, in milliseconds. The target is
under 200 ms for each. PostgreSQL is measured when 127.0.0.1:5432 answers (database
operator_bench_dashboard, dropped and created anew); BENCH_PG_URL names another server.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import results  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402
from werkzeug.security import generate_password_hash  # noqa: E402

from app import create_app  # noqa: E402
from config import Settings  # noqa: E402
from core import db  # noqa: E402
from inbound import audit  # noqa: E402
from incidents import records  # noqa: E402
from outbox import queue  # noqa: E402

MESSAGES = int(os.environ.get("BENCH_MESSAGES", 1_000_000))
ALERTS = int(os.environ.get("BENCH_ALERTS", 100_000))
BATCH = 20_000
YEAR = 365 * 86400.0
NUMBERS = ["+15555550100", "+15555550101", "+15555550102", "+15555550103", "+15555550104"]
COMMANDS = ["status", "help", "ack", "alerts", "query", "silence", "more"]
OUTCOMES = ["ok"] * 17 + ["error", "rate_limited", "unauthorized"]
PASSWORD = "bench-password"
TARGET_MS = 200.0


def settings_for(url: str, tmp: str) -> Settings:
    return Settings(
        twilio_auth_token="bench-token-0123456789",
        public_url="http://localhost",
        authorized={n: "admin" for n in NUMBERS},
        database_url=url,
        log_dir=os.path.join(tmp, "logs"),
        log_level="WARNING",
        dashboard_password=generate_password_hash(PASSWORD),
        secret_key="bench-secret-0123456789abcdef",
    )


def seed(settings: Settings) -> None:
    app = create_app(settings)  # creates the schema, indexes included
    engine = app.extensions["operator"].engine
    now = db.now()
    started = time.perf_counter()
    with engine.begin() as conn:
        for first in range(0, MESSAGES, BATCH):
            rows = []
            for i in range(first, min(first + BATCH, MESSAGES)):
                phone = NUMBERS[i % len(NUMBERS)]
                rows.append({
                    "received_at": now - i * YEAR / MESSAGES, "message_sid": f"SM{i:032d}", "phone": phone,
                    "phone_masked": phone[:5] + "***" + phone[-4:], "body": f"{COMMANDS[i % 7]} web-{i % 40}",
                    "command": COMMANDS[i % 7], "reply": "web-1 ok, 3 checks", "segments": 1 + (i % 11 == 0),
                    "latency_ms": 12.0, "outcome": OUTCOMES[i % len(OUTCOMES)], "request_id": "",
                })  # fmt: skip
            conn.execute(audit.messages.insert(), rows)
    with engine.begin() as conn:
        for first in range(0, ALERTS, BATCH):
            alerts, events, texts = [], [], []
            for i in range(first, min(first + BATCH, ALERTS)):
                at = now - i * YEAR / ALERTS
                firing = i % 100 == 0
                alerts.append({
                    "id": i + 1, "source": "alertmanager", "key": f"group-{i}", "name": f"Alert{i % 50}",
                    "summary": "latency over budget", "severity": "page", "labels": '{"instance": "web-1"}',
                    "status": "firing" if firing else "resolved", "started_at": at, "last_seen": at,
                    "opened_at": at, "resolved_at": None if firing else at + 600, "size": 1, "places": "",
                    "transition": "FIRING", "acked_by": None if firing else NUMBERS[1],
                    "acked_at": None if firing else at + 120,
                })  # fmt: skip
                events.append({"event_key": f"am:{i}", "alert_id": i + 1, "received_at": at})
                for n, phone in enumerate(NUMBERS[:2]):
                    status = ("delivered", "delivered", "delivered", "undelivered", "failed")[(i + n) % 5]
                    texts.append({
                        "to_number": phone, "body": f"ALERT #{i + 1}: Alert{i % 50}", "segments": 1,
                        "kind": "alert", "alert_id": i + 1, "status": status, "created_at": at,
                        "not_before": at, "attempts": 1, "sent_at": at + 1, "delivery_status": status,
                        "delivery_updated_at": at + 3, "error_code": "30003" if status != "delivered" else None,
                    })  # fmt: skip
            conn.execute(records.alerts.insert(), alerts)
            conn.execute(records.alert_events.insert(), events)
            conn.execute(queue.outbox.insert(), texts)
    with engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        conn.execute(text("VACUUM ANALYZE" if db.is_postgres(engine) else "ANALYZE"))
    print(f"  seeded {MESSAGES:,} messages and {ALERTS:,} alerts in {time.perf_counter() - started:.0f} s")
    app.extensions["operator"].close()


def pages(client) -> dict[str, str]:
    """The pages to time: each one a lead opens, filters included, and a page deep in the log."""
    month = datetime.now(UTC).strftime("%Y-%m-01")
    deep = "/dashboard/messages"
    for _ in range(20):  # 20 pages back, following the Older links
        found = re.search(r'<a href="([^"]+)" id="older">', client.get(deep).data.decode())
        deep = found.group(1).replace("&amp;", "&")
    return {
        "overview": "/dashboard/",
        "messages": "/dashboard/messages",
        "messages, 21st page": deep,
        "messages by number": f"/dashboard/messages?number={NUMBERS[3]}",
        "messages by command": "/dashboard/messages?command=silence",
        "messages by outcome": "/dashboard/messages?outcome=unauthorized&direction=in",
        "messages by date": f"/dashboard/messages?from={month}&to={month}",
        "messages, all filters": f"/dashboard/messages?number={NUMBERS[1]}&command=ack&outcome=error&from=2001-01-01",
        "messages, no match": "/dashboard/messages?command=nosuchcommand",
        "alerts": "/dashboard/alerts",
        "alert timeline": f"/dashboard/alerts/{ALERTS // 2}",
        "rules": "/dashboard/rules",
        "phone panel": "/dashboard/phone",
    }


def measure(settings: Settings) -> dict[str, float]:
    app = create_app(settings)
    client = app.test_client()
    login = client.get("/dashboard/login").data.decode()
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', login).group(1)
    client.post("/dashboard/login", data={"csrf_token": token, "username": "admin", "password": PASSWORD})
    results = {}
    for name, path in pages(client).items():
        assert client.get(path).status_code == 200, path
        samples = []
        for _ in range(5):
            started = time.perf_counter()
            client.get(path)
            samples.append(time.perf_counter() - started)
        results[name] = statistics.median(samples) * 1000
    app.extensions["operator"].close()
    return results


def postgres_url() -> str | None:
    base = os.environ.get("BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    try:
        admin = create_engine(base, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text("DROP DATABASE IF EXISTS operator_bench_dashboard"))
            conn.execute(text("CREATE DATABASE operator_bench_dashboard"))
        admin.dispose()
    except Exception as exc:  # noqa: BLE001 - no server: SQLite only
        print(f"PostgreSQL not measured ({exc.__class__.__name__})")
        return None
    return base.rsplit("/", 1)[0] + "/operator_bench_dashboard"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    results.add_option(parser)
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    slow = 0
    figures = []
    with tempfile.TemporaryDirectory() as tmp:
        stores = [("SQLite", f"sqlite:///{tmp}/operator.db")]
        if (pg := postgres_url()) is not None:
            stores.append(("PostgreSQL", pg))
        for label, url in stores:
            print(f"{label}:")
            settings = settings_for(url, tmp)
            seed(settings)
            timings = measure(settings)
            worst = max(timings, key=timings.__getitem__)
            figures.append((f"slowest of {len(timings)} pages, {label}", f"{worst}: {timings[worst]:.1f} ms",
                            f"< {TARGET_MS:.0f} ms"))  # fmt: skip
            for name, ms in timings.items():
                mark = "" if ms < TARGET_MS else "  <- over target"
                slow += ms >= TARGET_MS
                print(f"  {name:24} {ms:7.1f} ms{mark}")
    print(f"target {TARGET_MS:.0f} ms per page: {'met' if not slow else f'{slow} over'}")
    results.write(args.json, "dashboard_scale (1,000,000 messages)", figures)
    return 1 if slow else 0


if __name__ == "__main__":
    sys.exit(main())
