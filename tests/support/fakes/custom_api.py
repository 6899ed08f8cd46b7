"""A team's own JSON API on a loopback socket, with bearer-token auth and JSON error bodies."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tests.support.fakes.loopback import FakeServer, Request

TOKEN = "custom-api-token-abc123"


@dataclass
class FakeCustomApi(FakeServer):
    token: str = TOKEN
    # path -> (status, JSON body)
    routes: dict[str, tuple[int, Any]] = field(
        default_factory=lambda: {
            "/": (200, {"service": "shop"}),
            "/health": (200, {"status": "ok", "version": "2.4.1", "checks": {"db": True, "queue": True}}),
            "/stats/orders": (200, {"queue": {"depth": 17, "oldest_seconds": 42.5}, "failed_last_hour": 3}),
        }
    )

    def answer(self, request: Request):
        if self.token and request.headers.get("authorization") != f"Bearer {self.token}":
            return 401, {"WWW-Authenticate": "Bearer"}, {"error": {"code": 401, "message": "invalid token"}}
        if request.path not in self.routes:
            return 404, {}, {"error": {"code": 404, "message": f"no route {request.path}"}}
        status, body = self.routes[request.path]
        return status, {}, body
