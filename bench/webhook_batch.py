"""Accepting one Alertmanager notification of 1,000 alerts, against parsing it alone.

Run: python bench/webhook_batch.py  (from the repository root). Prints medians in ms and the
ratio accept/parse; the target is "well under a second" for the whole accept (stored, deduplicated,
texts queued, committed). A PostgreSQL run is added when TEST_POSTGRES_URL's server answers.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from app import create_app  # noqa: E402
from config import Settings  # noqa: E402
from incidents.sources.alertmanager import parse_alertmanager  # noqa: E402

ALERTS = 1000
RUNS = 7
TOKEN = "bench-token"


def notification(group: int) -> bytes:
    alerts = [
        {
            "status": "firing",
            "labels": {"alertname": "Flood", "instance": f"host-{i}:9100", "job": "node", "severity": "page"},
            "annotations": {"summary": "flood"},
            "startsAt": "2026-01-01T00:00:00.123456789Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus:9090/graph?g0.expr=up",
            "fingerprint": f"{group:04x}{i:012x}",
        }
        for i in range(ALERTS)
    ]
    return json.dumps(
        {
            "version": "4",
            "groupKey": f'{{}}:{{alertname="Flood",run="{group}"}}',
            "status": "firing",
            "truncatedAlerts": 0,
            "receiver": "operator",
            "groupLabels": {"alertname": "Flood"},
            "commonLabels": {"alertname": "Flood", "job": "node", "severity": "page"},
            "commonAnnotations": {"summary": "flood"},
            "externalURL": "http://alertmanager:9093",
            "alerts": alerts,
        }
    ).encode()


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def parse_only(bodies: list[bytes]) -> list[float]:
    samples = []
    for body in bodies:
        started = time.perf_counter()
        parse_alertmanager(json.loads(body))
        samples.append(time.perf_counter() - started)
    return samples


def accept(database_url: str, log_dir: str, bodies: list[bytes]) -> tuple[list[float], list[float]]:
    """(first delivery, HA duplicate) timings through the real app."""
    settings = Settings(
        twilio_auth_token="bench" * 6,
        authorized={"+15555550100": "admin", "+15555550101": "responder"},
        database_url=database_url,
        log_dir=log_dir,
        log_level="WARNING",
        alertmanager_token=TOKEN,
    )
    app = create_app(settings)
    client = app.test_client()
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    first, again = [], []
    try:
        for body in bodies:
            for samples in (first, again):
                started = time.perf_counter()
                response = client.post("/webhook/alertmanager", data=body, headers=headers)
                samples.append(time.perf_counter() - started)
                assert response.status_code == 200, response.json
    finally:
        app.extensions["operator"].close()
    return first, again


def report(name: str, parse_ms: float, first: list[float], again: list[float]) -> None:
    new_ms, dup_ms = median_ms(first), median_ms(again)
    print(
        f"webhook_batch [{name}]: {ALERTS} alerts: parse {parse_ms:.1f} ms (baseline), "
        f"accept new {new_ms:.1f} ms = {new_ms / parse_ms:.1f}x, "
        f"accept duplicate {dup_ms:.1f} ms = {dup_ms / parse_ms:.1f}x; "
        f"target < 1000 ms: {'ok' if max(new_ms, dup_ms) < 1000 else 'MISSED'}"
    )


def main() -> None:
    bodies = [notification(run) for run in range(RUNS)]
    parse_ms = median_ms(parse_only(bodies))
    with tempfile.TemporaryDirectory() as tmp:
        first, again = accept(f"sqlite:///{tmp}/bench.db", tmp, bodies)
        report("sqlite", parse_ms, first, again)
        try:
            from tests.support.servers import fresh_postgres_database

            url, drop = fresh_postgres_database()
        except BaseException as exc:  # noqa: BLE001 - pytest's skip is a BaseException
            print(f"webhook_batch [postgresql]: skipped ({exc.__class__.__name__})")
            return
        try:
            first, again = accept(url, tmp, bodies)
            report("postgresql", parse_ms, first, again)
        finally:
            drop()


if __name__ == "__main__":
    main()
