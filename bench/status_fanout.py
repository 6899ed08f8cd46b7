"""`status` with five monitors, one hanging, against the sum of their individual latencies.

Four backends answer slowly (0.6-0.9 s, a bad night) and one never answers, so it ends at its
timeout (MONITOR_TIMEOUT, 1 s here). Asked one after another, the reply would take the sum;
fanned out it should take about the slowest one. Target ratio: <= 0.35.
"""

from __future__ import annotations

import os
import sqlite3
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from monitors import check_all  # noqa: E402
from monitors.custom_api import CustomApiMonitor  # noqa: E402
from monitors.database import DatabaseMonitor  # noqa: E402
from monitors.loki import LokiMonitor  # noqa: E402
from monitors.newrelic import NewRelicMonitor  # noqa: E402
from tests.support.fakes.custom_api import TOKEN, FakeCustomApi  # noqa: E402
from tests.support.fakes.loki import FakeLoki  # noqa: E402
from tests.support.fakes.newrelic import API_KEY, FakeNewRelic  # noqa: E402

TIMEOUT = 1.0
DEADLINE = 10.0
ROUNDS = 3
TARGET = 0.35


def main() -> int:
    workdir = tempfile.mkdtemp(prefix="bench-fanout-")
    db_path = os.path.join(workdir, "app.db")
    sqlite3.connect(db_path).execute("CREATE TABLE t (x int)").connection.close()
    with (
        FakeNewRelic(delay=0.9) as nr,
        FakeCustomApi(delay=0.8) as api,
        FakeLoki(delay=0.7) as loki,
        FakeLoki(hang=True) as hung,
    ):
        monitors = {
            "newrelic": NewRelicMonitor(API_KEY, "1", api_url=nr.url, timeout=TIMEOUT),
            "api": CustomApiMonitor(api.url, TOKEN, timeout=TIMEOUT),
            "loki": LokiMonitor(loki.url, timeout=TIMEOUT),
            "database": DatabaseMonitor(f"sqlite:///{db_path}", timeout=TIMEOUT),
            "hung": LokiMonitor(hung.url, timeout=TIMEOUT),
        }
        sums, fanouts = [], []
        for _ in range(ROUNDS):
            total = 0.0
            for monitor in monitors.values():
                started = time.perf_counter()
                monitor.check()
                total += time.perf_counter() - started
            sums.append(total)
            started = time.perf_counter()
            results = check_all(monitors, DEADLINE)
            fanouts.append(time.perf_counter() - started)
        for monitor in monitors.values():
            monitor.close()
    line = " | ".join(r.line for r in results)
    sequential, fanout = statistics.median(sums), statistics.median(fanouts)
    ratio = fanout / sequential
    print(f"status line: {line}")
    print(f"sum of individual latencies: {sequential:.3f}s (median of {ROUNDS})")
    print(f"status fan-out:              {fanout:.3f}s (median of {ROUNDS})")
    print(f"ratio: {ratio:.2f} (target <= {TARGET})")
    return 0 if ratio <= TARGET else 1


if __name__ == "__main__":
    raise SystemExit(main())
