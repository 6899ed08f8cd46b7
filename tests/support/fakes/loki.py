"""Grafana Loki on a loopback socket: /ready and /loki/api/v1/query_range over in-memory streams.

The fake really applies the query: a `{label="v"}` or `{label=~"re"}` selector and `|= "text"`
line filters (with LogQL string escapes), start/end in nanoseconds, limit and direction. A query
it cannot parse gets HTTP 400 with a plain-text body, as Loki answers.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field

from tests.support.fakes.loopback import FakeServer, Request
from tests.support.paths import PAYLOADS

ENVELOPE = json.loads((PAYLOADS / "loki_query_range.json").read_text())
_SELECTOR = re.compile(r'^\{\s*(\w+)\s*(=~|=)\s*"((?:[^"\\]|\\.)*)"\s*\}')
_FILTER = re.compile(r'^\s*\|=\s*"((?:[^"\\]|\\.)*)"')


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: m.group(1), text)


@dataclass
class FakeLoki(FakeServer):
    # (labels, unix-ns timestamp, line)
    entries: list[tuple[dict[str, str], int, str]] = field(default_factory=list)
    ready: bool = True

    def push(self, labels: dict[str, str], line: str, ago: float = 0.0) -> None:
        self.entries.append((labels, int((time.time() - ago) * 1e9), line))

    def answer(self, request: Request):
        if request.path == "/ready":
            return (200, {}, "ready\n") if self.ready else (503, {}, "Ingester not ready: waiting for 15s\n")
        if request.path != "/loki/api/v1/query_range":
            return 404, {}, "404 page not found\n"
        query = request.query.get("query", "")
        parsed = self._parse(query)
        if parsed is None:
            return (
                400,
                {"Content-Type": "text/plain; charset=utf-8"},
                (f"parse error at line 1, col 1: syntax error: unexpected IDENTIFIER in {query[:40]}"),
            )
        label, op, pattern, needles = parsed
        start, end = int(request.query["start"]), int(request.query["end"])
        limit = int(request.query.get("limit", "100"))
        streams: dict[tuple, list] = {}
        for labels, ts, line in self.entries:
            value = labels.get(label)
            if value is None or not (re.fullmatch(pattern, value) if op == "=~" else value == pattern):
                continue
            if start <= ts <= end and all(n in line for n in needles):
                streams.setdefault(tuple(sorted(labels.items())), []).append((ts, line))
        picked = sorted(((ts, k) for k, v in streams.items() for ts, _ in v), reverse=True)[:limit]
        keep = {(k, ts) for ts, k in picked}
        result = [
            {
                "stream": dict(k),
                "values": [[str(ts), line] for ts, line in sorted(v, reverse=True) if (k, ts) in keep],
            }
            for k, v in streams.items()
        ]
        result = [r for r in result if r["values"]]
        stats = {"summary": {"execTime": 0.001, "totalLinesProcessed": len(self.entries)}}
        return (
            200,
            {},
            {"status": "success", "data": {"resultType": "streams", "result": result, "stats": stats}},
        )

    @staticmethod
    def _parse(query: str):
        match = _SELECTOR.match(query)
        if not match:
            return None
        label, op, pattern = match.group(1), match.group(2), _unescape(match.group(3))
        rest, needles = query[match.end() :], []
        while rest.strip():
            filt = _FILTER.match(rest)
            if not filt:
                return None
            needles.append(_unescape(filt.group(1)))
            rest = rest[filt.end() :]
        return label, op, pattern, needles
