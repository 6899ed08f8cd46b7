"""Real Prometheus and Alertmanager binaries wired to a real Operator HTTP server, for end-to-end tests.

A tiny metrics endpoint (`Switch`) exposes `test_switch{host=...}`; Prometheus scrapes it and a
rule fires while it is 1, so a test can fire and resolve an alert by flipping it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from werkzeug.serving import make_server

from tests.support.processes import running
from tests.support.servers import free_port

PROMETHEUS = "/usr/bin/prometheus"
ALERTMANAGER = "/usr/bin/prometheus-alertmanager"


class Switch:
    """A scrape target whose `test_switch` series a test turns on and off."""

    def __init__(self, hosts: tuple[str, ...]):
        self.value, self.hosts = 1, hosts
        switch = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = "".join(f'test_switch{{host="{h}"}} {switch.value}\n' for h in switch.hosts).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def serving(app) -> Iterator[str]:
    """Run a Flask app on a real loopback socket; yields its base URL."""
    server = make_server("127.0.0.1", free_port(), app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(5)


def alertmanager_config(webhook_url: str, token: str) -> str:
    return f"""
route:
  receiver: operator
  group_by: [alertname]
  group_wait: 1s
  group_interval: 2s
  repeat_interval: 1h
receivers:
  - name: operator
    webhook_configs:
      - url: {webhook_url}
        send_resolved: true
        http_config:
          authorization:
            type: Bearer
            credentials: {token}
"""


PROMETHEUS_RULES = """
groups:
  - name: operator-e2e
    rules:
      - alert: HighCPU
        expr: test_switch > 0
        labels: {severity: page}
        annotations: {summary: "CPU above 90%"}
"""


def prometheus_config(switch_port: int, alertmanager_ports: list[int]) -> str:
    targets = ", ".join(f"'127.0.0.1:{p}'" for p in alertmanager_ports)
    return f"""
global: {{scrape_interval: 1s, evaluation_interval: 1s}}
rule_files: [rules.yml]
alerting:
  alertmanagers:
    - static_configs:
        - targets: [{targets}]
scrape_configs:
  - job_name: node
    static_configs:
      - targets: ['127.0.0.1:{switch_port}']
"""


@contextmanager
def alertmanager(
    directory: Path, name: str, webhook_url: str, token: str, port: int | None = None, routes: str = ""
) -> Iterator[str]:
    """A standalone Alertmanager (no cluster) routing every alert to `webhook_url`; yields its URL.

    `routes`: YAML of child routes (indented as the `route:` keys), e.g. one for the Watchdog.
    """
    text = alertmanager_config(webhook_url, token)
    text = text.replace("receivers:", routes.rstrip() + "\nreceivers:", 1) if routes else text
    with standalone_alertmanager(directory, name, text, port) as url:
        yield url


@contextmanager
def standalone_alertmanager(directory: Path, name: str, text: str, port: int | None = None) -> Iterator[str]:
    """A standalone Alertmanager (no cluster) with the configuration `text`; yields its URL."""
    port = port or free_port()
    config = directory / f"{name}.yml"
    config.write_text(text)
    cmd = [
        ALERTMANAGER,
        f"--config.file={config}",
        f"--storage.path={directory / (name + '-data')}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
    ]
    url = f"http://127.0.0.1:{port}"
    with running(cmd, f"{url}/-/ready", str(directory / f"{name}.log"), cwd=directory):
        yield url


@contextmanager
def prometheus(
    directory: Path, switch_port: int, alertmanager_urls: list[str], rules: str = PROMETHEUS_RULES, *args: str
) -> Iterator[str]:
    """Prometheus scraping the switch with `rules`; extra command-line `args`; yields its URL."""
    port = free_port()
    (directory / "rules.yml").write_text(rules)
    ports = [int(u.rsplit(":", 1)[1]) for u in alertmanager_urls]
    (directory / "prometheus.yml").write_text(prometheus_config(switch_port, ports))
    cmd = [
        PROMETHEUS,
        f"--config.file={directory / 'prometheus.yml'}",
        f"--storage.tsdb.path={directory / 'prometheus-data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        *args,
    ]
    url = f"http://127.0.0.1:{port}"
    with running(cmd, f"{url}/-/ready", str(directory / "prometheus.log"), cwd=directory):
        yield url


def wait_for(check: Callable[[], object], what: str, timeout: float = 40.0) -> object:
    """Poll `check` until it returns something truthy; fail with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
