"""/sms throughput measured on the server: Operator against a bare Flask route, driven by wrk.

A Python load generator saturates before gunicorn does, so the load comes from wrk (C, Debian's
`wrk` package) with a Lua script (signed_bodies.lua) that posts pre-signed Twilio bodies, each with
its own MessageSid, so every request runs the command and is audited (a repeated MessageSid would
take the cheaper duplicate path). Both servers run `gunicorn -c production.py` with the same
WEB_CONCURRENCY, side by side, and are measured in alternating rounds; each round gives one ratio
of requests/s, and the verdict is their median (target >= 0.6). Server CPU per request (all
gunicorn processes) is printed too: it is far less sensitive to other load on the machine than
requests/s. wrk's own CPU is printed so a saturated load generator is seen, not believed.

    python bench/sms_throughput.py [--store sqlite|postgres] [--rounds 5] [--seconds 5]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import psutil
from twilio.request_validator import RequestValidator

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import results  # noqa: E402

from tests.support.live_server import base_env  # noqa: E402
from tests.support.processes import running  # noqa: E402
from tests.support.servers import free_port, fresh_postgres_database  # noqa: E402

TOKEN = "bench-token-" + uuid.uuid4().hex
NUMBER = "+15555550100"
RATE_LIMIT = "1000000 per minute"
LUA = Path(__file__).with_name("signed_bodies.lua")
TARGET = 0.6


@dataclass(frozen=True)
class Server:
    name: str
    url: str
    pid: int  # the gunicorn arbiter


@contextmanager
def serve(name: str, app: str, workers: int, tmp: Path, **env_overrides: str) -> Iterator[Server]:
    port = free_port()
    tmp.mkdir(parents=True, exist_ok=True)
    url = f"http://127.0.0.1:{port}"
    env = base_env(
        tmp,
        TWILIO_AUTH_TOKEN=TOKEN,
        AUTHORIZED_NUMBERS=f"{NUMBER}:admin",
        RATE_LIMIT=RATE_LIMIT,
        WEB_CONCURRENCY=str(workers),
        PORT=str(port),
        PUBLIC_URL=url,
        PYTHONPATH=f"{REPO}{os.pathsep}{REPO / 'bench'}",
        **env_overrides,
    )
    cmd = [sys.executable, "-m", "gunicorn", "-c", str(REPO / "production.py")]
    cmd += ["-b", f"127.0.0.1:{port}", app]
    with running(cmd, url + "/livez", tmp / "gunicorn.log", 60, cwd=tmp, env=env) as proc:
        yield Server(name, url + "/sms", proc.pid)


def write_bodies(path: Path, url: str, count: int) -> None:
    """`count` signed `help` texts, one MessageSid each, as wrk's Lua script reads them."""
    validator = RequestValidator(TOKEN)
    with path.open("w") as out:
        for _ in range(count):
            params = {
                "MessageSid": "SM" + uuid.uuid4().hex,
                "AccountSid": "AC" + "0" * 32,
                "From": NUMBER,
                "To": "+15005550006",
                "Body": "help",
                "NumMedia": "0",
            }
            out.write(f"{validator.compute_signature(url, params)}\t{urlencode(params)}\n")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its children so far."""
    root = psutil.Process(pid)
    total = 0.0
    for proc in [root, *root.children(recursive=True)]:
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


@dataclass(frozen=True)
class Round:
    rate: float  # answered requests/s
    cpu_ms: float  # server CPU per request, all gunicorn processes
    wrk_cores: float  # CPU wrk itself used, in cores
    p50_ms: float
    p99_ms: float


def measure(server: Server, bodies: Path, seconds: float, connections: int, threads: int) -> Round:
    """One wrk run against `server`; stops on any error, non-2xx answer or reused body."""
    own = cpu_seconds(server.pid)
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", "--latency"]
    cmd += ["-s", str(LUA), server.url, "--", str(bodies), str(threads)]
    started = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    wrk = psutil.Process(proc.pid)
    wrk_cpu = 0.0
    while proc.poll() is None:
        try:
            times = wrk.cpu_times()
            wrk_cpu = times.user + times.system
        except psutil.NoSuchProcess:
            break
        time.sleep(0.2)
    out = proc.stdout.read() if proc.stdout else ""
    elapsed = time.monotonic() - started
    found = re.search(
        r"RESULT requests=(\d+) non2xx=(\d+) errors=(\d+) p50_us=(\d+) p99_us=(\d+) wrapped=(\d+)", out
    )
    if proc.returncode or not found:
        raise SystemExit(f"wrk failed ({proc.returncode}):\n{out}")
    requests, non2xx, errors, p50, p99, wrapped = map(int, found.groups())
    if non2xx or errors or wrapped:
        raise SystemExit(
            f"{server.name}: {non2xx} non-2xx, {errors} socket errors, {wrapped} reused bodies; "
            "see its gunicorn.log (or raise --bodies)"
        )
    cpu = cpu_seconds(server.pid) - own
    return Round(requests / seconds, 1000 * cpu / max(requests, 1), wrk_cpu / elapsed, p50 / 1000, p99 / 1000)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of one round per server")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--workers", type=int, default=2, help="WEB_CONCURRENCY of both servers")
    parser.add_argument("--bodies", type=int, default=6000, help="signed bodies per second of a round")
    results.add_option(parser)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    drop = None
    store_env: dict[str, str] = {}
    if args.store == "postgres":
        url, drop = fresh_postgres_database()
        store_env["DATABASE_URL"] = url
    print(
        f"gunicorn -c production.py, WEB_CONCURRENCY={args.workers}; wrk {args.threads} thread(s), "
        f"{args.connections} connections; {args.rounds} rounds of {args.seconds:g}s per server, order "
        f"alternating; store {args.store}; signed `help` texts, one MessageSid each, never throttled; "
        f"{psutil.cpu_count()} CPUs"
    )
    rounds: list[tuple[Round, Round]] = []
    try:
        with (
            tempfile.TemporaryDirectory(prefix="operator-bench-") as tmp,
            serve("operator", "app:create_app()", args.workers, Path(tmp) / "op", **store_env) as op,
            serve("bare", "bare_app:create_app()", args.workers, Path(tmp) / "bare") as bare,
        ):
            count = int(args.bodies * args.seconds)

            def bodies(label: str) -> Path:
                path = Path(tmp) / f"bodies-{label}.txt"
                write_bodies(path, op.url, count)
                return path

            for server in (op, bare):  # connections, imports, SQLite pages
                measure(server, bodies("warmup-" + server.name), 2, args.connections, args.threads)
            print(
                "round  operator req/s  bare req/s  ratio  CPU ms/req operator  bare  wrk cores  p99 ms operator"
            )
            for i in range(args.rounds):
                order = (op, bare) if i % 2 == 0 else (bare, op)
                path = bodies(str(i))
                got = {s.name: measure(s, path, args.seconds, args.connections, args.threads) for s in order}
                o, b = got["operator"], got["bare"]
                rounds.append((o, b))
                print(
                    f"{i + 1:>5}  {o.rate:>14.1f}  {b.rate:>10.1f}  {o.rate / b.rate:>5.2f}  "
                    f"{o.cpu_ms:>19.2f}  {b.cpu_ms:>4.2f}  {max(o.wrk_cores, b.wrk_cores):>9.2f}  {o.p99_ms:>8.1f}"
                )
    finally:
        if drop:
            drop()

    def median(pick) -> float:
        return statistics.median(pick(pair) for pair in rounds)

    ratios = [o.rate / b.rate for o, b in rounds]
    ratio = statistics.median(ratios)
    cpu_ratio = median(lambda p: p[1].cpu_ms) / median(lambda p: p[0].cpu_ms)
    print(
        f"operator ({args.store}): {median(lambda p: p[0].rate):7.1f} req/s median, "
        f"{median(lambda p: p[0].cpu_ms):.2f} ms CPU/req, p50 {median(lambda p: p[0].p50_ms):.1f} ms, "
        f"p99 {median(lambda p: p[0].p99_ms):.1f} ms"
    )
    print(
        f"bare Flask         : {median(lambda p: p[1].rate):7.1f} req/s median, "
        f"{median(lambda p: p[1].cpu_ms):.2f} ms CPU/req"
    )
    print(f"wrk used at most {max(max(o.wrk_cores, b.wrk_cores) for o, b in rounds):.2f} cores")
    print(f"CPU ratio (bare ms/req over operator ms/req): {cpu_ratio:.2f}")
    verdict = "OK" if ratio >= TARGET else "BELOW TARGET"
    print(
        f"ratio {ratio:.2f} (median of {len(ratios)} rounds, spread {min(ratios):.2f}-{max(ratios):.2f}), "
        f"target >= {TARGET}: {verdict}"
    )
    results.write(
        args.json,
        f"sms_throughput ({args.store})",
        [
            (
                "/sms req/s, Operator over bare Flask",
                f"{ratio:.2f} ({min(ratios):.2f}-{max(ratios):.2f})",
                f">= {TARGET}",
            ),
            (
                "req/s, Operator / bare",
                f"{median(lambda p: p[0].rate):.0f} / {median(lambda p: p[1].rate):.0f}",
                "",
            ),
            (
                "server CPU ms/req, Operator / bare",
                f"{median(lambda p: p[0].cpu_ms):.2f} / {median(lambda p: p[1].cpu_ms):.2f}",
                "",
            ),  # fmt: skip
            (
                "/sms p50 / p99 at saturation",
                f"{median(lambda p: p[0].p50_ms):.1f} / {median(lambda p: p[0].p99_ms):.1f} ms",
                "",
            ),  # fmt: skip
        ],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
