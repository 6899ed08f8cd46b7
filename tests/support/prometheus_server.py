"""A real Prometheus (/usr/bin/prometheus) on a free loopback port, for tests.

It scrapes itself (job "prometheus"), one target where nothing listens (job "node", instance
"localhost:<port>", always down), and evaluates a recording rule `operator_test:answer` = 42,
so queries and the targets line have known, real answers.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

from tests.support.processes import running
from tests.support.servers import free_port

BINARY = "/usr/bin/prometheus"
RECORDED = "operator_test:answer"
RECORDED_VALUE = 42.0

CONFIG = """
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: ["{rules}"]
scrape_configs:
  - job_name: prometheus
    static_configs: [{{targets: ["127.0.0.1:{port}"]}}]
  - job_name: node
    scrape_timeout: 500ms
    static_configs: [{{targets: ["localhost:{dead}"]}}]
"""
RULES = """
groups:
  - name: operator-test
    rules:
      - record: operator_test:answer
        expr: vector(42)
"""


@dataclass(frozen=True)
class Prometheus:
    url: str
    down_instance: str


@contextmanager
def prometheus(workdir: Path) -> Iterator[Prometheus]:
    """Start Prometheus in `workdir`; yield once both targets were scraped and the rule ran."""
    port, dead = free_port(), free_port()
    rules = workdir / "rules.yml"
    rules.write_text(RULES)
    config = workdir / "prometheus.yml"
    config.write_text(CONFIG.format(rules=rules, port=port, dead=dead))
    cmd = [
        BINARY.rsplit("/", 1)[-1] if not Path(BINARY).exists() else BINARY,
        f"--config.file={config}",
        f"--storage.tsdb.path={workdir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
    ]
    url = f"http://127.0.0.1:{port}"
    with running(cmd, f"{url}/-/ready", str(workdir / "prometheus.log"), cwd=workdir):
        _wait_for_data(url)
        yield Prometheus(url, f"localhost:{dead}")


def _wait_for_data(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        targets = requests.get(f"{url}/api/v1/targets", timeout=2).json()["data"]["activeTargets"]
        scraped = len(targets) == 2 and all(t["health"] in ("up", "down") for t in targets)
        answer = requests.get(f"{url}/api/v1/query", params={"query": RECORDED}, timeout=2).json()
        up = requests.get(f"{url}/api/v1/query", params={"query": "up"}, timeout=2).json()
        if scraped and answer["data"]["result"] and len(up["data"]["result"]) == 2:
            return
        time.sleep(0.2)
    raise RuntimeError(f"Prometheus at {url} had no scrape or rule data after {timeout}s")
