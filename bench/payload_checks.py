"""CPU time the web process spends refusing or accepting bodies of escaped quotes, by size.

Run: python bench/payload_checks.py [KB ...]  (from the repository root; default 40 150 1000).
For each size it posts two bodies to /webhook/alertmanager in-process and prints the process CPU
time of the request (time.process_time, so other load on the machine does not count) and the
answer: escaped quotes outside any string (refused, 400) and a summary of escaped quotes and
brackets inside a valid notification (accepted, 200). Every check on a body must stay linear:
ten times the body, about ten times the time.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from app import create_app  # noqa: E402
from config import Settings  # noqa: E402

TOKEN = "bench-token"


def bodies(size: int) -> dict[str, bytes]:
    bare = '\\"' * (size // 2)
    alert = {
        "status": "firing",
        "labels": {"alertname": "Quotes", "instance": "web-1:9100"},
        "annotations": {"summary": '"[{' * (size // 4)},
        "startsAt": "2026-01-01T00:00:00Z",
        "fingerprint": f"q{size}",
    }
    valid = json.dumps({"version": "4", "groupKey": f"g{size}", "status": "firing", "alerts": [alert]})
    return {"escaped quotes, not JSON": bare.encode(), "valid, quotes in a summary": valid.encode()}


def main(sizes_kb: list[int]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            twilio_auth_token="bench" * 6,
            database_url=f"sqlite:///{tmp}/bench.db",
            log_dir=f"{tmp}/logs",
            log_level="ERROR",
            alertmanager_token=TOKEN,
        )
        app = create_app(settings)
        client = app.test_client()
        headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
        print(f"{'body':>8}  {'kind':<28} {'answer':>6} {'cpu ms':>9}")
        for kb in sizes_kb:
            for kind, body in bodies(kb * 1000).items():
                started = time.process_time()
                response = client.post("/webhook/alertmanager", data=body, headers=headers)
                spent = (time.process_time() - started) * 1000
                print(f"{len(body) / 1000:>6.0f}KB  {kind:<28} {response.status_code:>6} {spent:>9.1f}")
        app.extensions["operator"].close()


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [40, 150, 1000])
