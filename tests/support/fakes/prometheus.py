"""Prometheus's query API on a loopback socket: every instant query answers the same vector.

Enough for the SMS replies built from a query's series (`metrics errors`, the error question);
the real Prometheus runs in the slow tests (tests/support/prometheus_server.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tests.support.fakes.loopback import FakeServer, Request


@dataclass
class FakePrometheus(FakeServer):
    # (labels, value) of each series every query answers
    series: list[tuple[dict[str, str], float]] = field(default_factory=list)

    def answer(self, request: Request):
        if request.path == "/-/healthy":
            return 200, {}, "Prometheus Server is Healthy.\n"
        if request.path == "/api/v1/targets":
            return 200, {}, {"status": "success", "data": {"activeTargets": []}}
        if request.path == "/api/v1/query":
            result = [
                {"metric": labels, "value": [1700000000.0, str(value)]} for labels, value in self.series
            ]
            return 200, {}, {"status": "success", "data": {"resultType": "vector", "result": result}}
        return 404, {}, "404 page not found\n"
