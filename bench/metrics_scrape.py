"""/metrics with 300,000 outbox rows: a scrape reading the store against one served from the cache.

Prints the median time of a scrape with METRICS_CACHE_TTL=0 (every scrape counts the outbox) and
with the default cache, and the slowest of 30 /sms texts (and how many failed) while another
thread scrapes nonstop, both ways. Set BENCH_DATABASE_URL to a PostgreSQL URL to measure there instead of SQLite.
"""

from __future__ import annotations

import logging
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import replace

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from app import create_app  # noqa: E402
from config import Settings  # noqa: E402
from core import db  # noqa: E402
from outbox import queue  # noqa: E402
from tests.support.phones import sign  # noqa: E402

ROWS = 300_000
TOKEN = "bench-token-0123456789"
ADMIN = "+15555550100"


def fill(settings: Settings) -> None:
    app = create_app(settings)
    engine = app.extensions["operator"].engine
    now = db.now()
    statuses = ("sent", "delivered", "failed", "undelivered", "queued")
    rows = [
        {
            "to_number": ADMIN,
            "body": "ALERT #1: cpu",
            "segments": 1,
            "kind": "alert",
            "status": statuses[i % len(statuses)],
            "created_at": now,
            "not_before": now,
            "attempts": 1,
            "error_code": "30003" if i % 5 == 2 else None,
            "delivery_status": statuses[i % len(statuses)] if i % 5 != 4 else None,
        }
        for i in range(ROWS)
    ]
    with engine.begin() as conn:
        conn.execute(queue.outbox.insert(), rows)
    app.extensions["operator"].close()


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def measure(settings: Settings) -> tuple[float, float, int]:
    """(median scrape, slowest /sms while scraping) in milliseconds, and the /sms that failed."""
    app = create_app(settings)
    client = app.test_client()
    scrapes = []
    for _ in range(10):
        started = time.perf_counter()
        assert client.get("/metrics").status_code == 200
        scrapes.append(time.perf_counter() - started)
    stop = threading.Event()

    def scrape_forever() -> None:
        scraper = app.test_client()
        while not stop.is_set():
            scraper.get("/metrics")

    thread = threading.Thread(target=scrape_forever)
    thread.start()
    texts, failed = [], 0
    for _ in range(30):
        params = {"MessageSid": "SM" + uuid.uuid4().hex, "From": ADMIN, "To": "+15005550006", "Body": "help"}
        headers = {"X-Twilio-Signature": sign("http://localhost/sms", params, TOKEN)}
        started = time.perf_counter()
        response = client.post("/sms", data=params, headers=headers)
        texts.append(time.perf_counter() - started)
        failed += b"Commands:" not in response.data
    stop.set()
    thread.join()
    app.extensions["operator"].close()
    return median_ms(scrapes), max(texts) * 1000, failed


def main() -> None:
    logging.disable(logging.WARNING)
    tmp = tempfile.mkdtemp(prefix="metrics-bench-")
    settings = Settings(
        twilio_auth_token=TOKEN,
        public_url="http://localhost",
        authorized={ADMIN: "admin"},
        database_url=os.environ.get("BENCH_DATABASE_URL") or f"sqlite:///{tmp}/operator.db",
        log_dir=f"{tmp}/logs",
        rate_limit="100000 per minute",
    )
    fill(settings)
    uncached = measure(replace(settings, metrics_cache_ttl=0))
    cached = measure(settings)
    print(f"outbox rows: {ROWS}")
    print(f"scrape, store read every time: {uncached[0]:.1f} ms; cached: {cached[0]:.2f} ms")
    print(
        f"30 /sms help while another thread scrapes nonstop: slowest {uncached[1]:.0f} ms and "
        f"{uncached[2]} failed uncached; slowest {cached[1]:.0f} ms and {cached[2]} failed cached"
    )


if __name__ == "__main__":
    main()
