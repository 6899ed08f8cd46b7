"""Alertmanager's silences API (v2): creating one answers its id, expiring one answers 200."""

from __future__ import annotations

from tests.support.fakes.loopback import FakeServer, Request


class FakeAlertmanager(FakeServer):
    def answer(self, request: Request) -> tuple[int, dict[str, str], bytes | str | dict | list]:
        if request.method == "POST" and request.path == "/api/v2/silences":
            return 200, {}, {"silenceID": f"silence-{len(self.requests)}"}
        if request.path.startswith("/api/v2/silence/"):
            return 200, {}, ""
        return 404, {}, {"message": "not found"}
