"""A real HTTP server on a free loopback port, in a thread, for vendor fakes.

A fake subclasses `FakeServer` and implements `answer(request) -> (status, headers, body)`.
Every request is recorded. `delay` makes it slow; `hang = True` makes it accept connections and
never answer, so deadlines can be tested against a real socket.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes = b""

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass
class FakeServer:
    hang: bool = False
    # seconds to wait before answering: a slow backend
    delay: float = 0.0
    requests: list[Request] = field(default_factory=list)

    def answer(self, request: Request) -> tuple[int, dict[str, str], bytes | str | dict | list]:
        raise NotImplementedError

    def start(self) -> FakeServer:
        fake = self
        self._release = threading.Event()

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                request = Request(
                    self.command,
                    parts.path,
                    {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()},
                    {k.lower(): v for k, v in self.headers.items()},
                    self.rfile.read(length) if length else b"",
                )
                fake.requests.append(request)
                if fake.hang:
                    fake._release.wait(60)
                    return
                if fake.delay:
                    fake._release.wait(fake.delay)
                status, headers, body = fake.answer(request)
                if isinstance(body, dict | list):
                    body = json.dumps(body)
                    headers = {"Content-Type": "application/json", **headers}
                data = body.encode() if isinstance(body, str) else body
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = _serve

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._server.block_on_close = False
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
