"""Requests/s of signed `help` texts on the production gunicorn config vs a bare Flask route.

Both servers run `gunicorn -c production.py` with the same WEB_CONCURRENCY, started side by side
by this process and driven in turn by the same load (a pool of threads, one requests.Session each,
loopback only, every request signed with Twilio's RequestValidator). The Operator run uses SQLite
(the default store) and a RATE_LIMIT high enough that the single sending number is never
throttled, so every request runs the command and is audited.

The machine is shared (load generator and servers on the same cores, other jobs too), so after a
warm-up the servers are measured in short rounds, back to back in alternating order; each round
gives one ratio, and the verdict is the median of those ratios (target >= 0.8). The spread, the
best-against-best ratio and each server's CPU time per request (summed over its gunicorn
processes, much less sensitive to other load than requests/s) are printed with it.

    python bench/sms_throughput.py [--rounds 7] [--seconds 3] [--threads 16] [--workers 4]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil
import requests
from twilio.request_validator import RequestValidator

REPO = Path(__file__).resolve().parent.parent
TOKEN = "bench-token-" + uuid.uuid4().hex
NUMBER = "+15555550100"
RATE_LIMIT = "1000000 per minute"


def free_port() -> int:
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class Server:
    name: str
    url: str
    pid: int  # the gunicorn arbiter


@contextmanager
def serve(name: str, app: str, workers: int, tmp: Path) -> Iterator[Server]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROMETHEUS_MULTIPROC")}
    for line in (REPO / ".env.example").read_text().splitlines():
        var, sep, _ = line.partition("=")
        if sep and not var.startswith("#"):
            env[var.strip()] = ""
    env.update(
        TWILIO_AUTH_TOKEN=TOKEN,
        AUTHORIZED_NUMBERS=f"{NUMBER}:admin",
        RATE_LIMIT=RATE_LIMIT,
        DATABASE_URL=f"sqlite:///{tmp}/operator.db",
        LOG_DIR=str(tmp / "logs"),
        LOG_LEVEL="INFO",
        PROXY_HOPS="0",
        SMS_MAX_SEGMENTS="1",
        WEB_CONCURRENCY=str(workers),
        PORT=str(port),
        PYTHONPATH=f"{REPO}{os.pathsep}{REPO / 'bench'}",
    )
    cmd = [
        sys.executable,
        "-m",
        "gunicorn",
        "-c",
        str(REPO / "production.py"),
        "-b",
        f"127.0.0.1:{port}",
        app,
    ]
    tmp.mkdir(parents=True, exist_ok=True)
    with open(tmp / "gunicorn.log", "ab") as log:
        proc = subprocess.Popen(cmd, cwd=tmp, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"{app} did not start; see {tmp / 'gunicorn.log'}")
            try:
                if requests.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"{app} not ready after 60s")
            time.sleep(0.1)
        yield Server(name, url + "/sms", proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def drive(url: str, threads: int, seconds: float) -> tuple[float, int, int]:
    """Requests/s of signed `help` POSTs from `threads` clients for `seconds`; failures; answers."""
    validator = RequestValidator(TOKEN)
    done, failed = [0] * threads, [0] * threads
    stop = threading.Event()

    def client(i: int) -> None:
        session = requests.Session()
        while not stop.is_set():
            params = {
                "MessageSid": "SM" + uuid.uuid4().hex,
                "AccountSid": "AC" + "0" * 32,
                "From": NUMBER,
                "To": "+15005550006",
                "Body": "help",
                "NumMedia": "0",
            }
            headers = {"X-Twilio-Signature": validator.compute_signature(url, params)}
            response = session.post(url, data=params, headers=headers, timeout=30)
            if response.status_code == 200 and b"Commands:" in response.content:
                done[i] += 1
            else:
                failed[i] += 1

    pool = [threading.Thread(target=client, args=(i,)) for i in range(threads)]
    started = time.monotonic()
    for thread in pool:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in pool:
        thread.join()
    return sum(done) / (time.monotonic() - started), sum(failed), sum(done)


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a gunicorn arbiter and its workers so far."""
    arbiter = psutil.Process(pid)
    total = 0.0
    for proc in [arbiter, *arbiter.children(recursive=True)]:
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def measure(server: Server, threads: int, seconds: float) -> tuple[float, float]:
    """(requests/s, server CPU ms per request) of one round; stops on any failed request."""
    before = cpu_seconds(server.pid)
    rate, failed, done = drive(server.url, threads, seconds)
    if failed:
        raise SystemExit(f"{server.name}: {failed} requests failed; see its gunicorn.log")
    return rate, 1000 * (cpu_seconds(server.pid) - before) / max(done, 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="length of one round per server")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of load before measuring")
    args = parser.parse_args()
    print(
        f"gunicorn -c production.py, WEB_CONCURRENCY={args.workers}, {args.threads} client threads, "
        f"{args.rounds} rounds of {args.seconds:g}s per server (order alternating), after "
        f"{args.warmup:g}s warm-up; store SQLite; RATE_LIMIT={RATE_LIMIT!r} (one sender, never "
        f"throttled: every request runs and is audited); load average {_load()}"
    )
    rows: list[tuple[float, float, float, float]] = []
    with (
        tempfile.TemporaryDirectory(prefix="operator-bench-") as tmp,
        serve("operator", "app:create_app()", args.workers, Path(tmp) / "operator") as operator,
        serve("bare", "bare_app:create_app()", args.workers, Path(tmp) / "bare") as bare,
    ):
        for server in (operator, bare):
            drive(server.url, args.threads, args.warmup)  # connections, imports, SQLite pages
        # Both servers in every round, back to back and in alternating order, so other load on the
        # machine (or a slow minute) hits them alike; each round gives one ratio.
        print(
            f"{'round':>5}  {'operator req/s':>14}  {'bare req/s':>10}  {'ratio':>5}  "
            f"{'server CPU ms/req: operator':>27}  {'bare':>5}"
        )
        for i in range(args.rounds):
            order = (operator, bare) if i % 2 == 0 else (bare, operator)
            result = {server.name: measure(server, args.threads, args.seconds) for server in order}
            (op_rate, op_cpu), (bare_rate, bare_cpu) = result["operator"], result["bare"]
            rows.append((op_rate, bare_rate, op_cpu, bare_cpu))
            print(
                f"{i + 1:>5}  {op_rate:>14.1f}  {bare_rate:>10.1f}  {op_rate / bare_rate:>5.2f}  "
                f"{op_cpu:>27.2f}  {bare_cpu:>5.2f}"
            )
    op_rates, bare_rates, op_cpus, bare_cpus = (list(column) for column in zip(*rows, strict=True))
    ratios = [op / bare for op, bare, _, _ in rows]
    ratio = statistics.median(ratios)
    print(
        f"median  {statistics.median(op_rates):>13.1f}  {statistics.median(bare_rates):>10.1f}  "
        f"{ratio:>5.2f}  {statistics.median(op_cpus):>27.2f}  {statistics.median(bare_cpus):>5.2f}"
    )
    print(
        f"operator, signed help  : {statistics.median(op_rates):7.1f} req/s median, {max(op_rates):7.1f} best"
    )
    print(
        f"bare Flask, fixed TwiML: {statistics.median(bare_rates):7.1f} req/s median, "
        f"{max(bare_rates):7.1f} best"
    )
    print(
        f"ratio: {ratio:.2f} median of rounds (spread {min(ratios):.2f}-{max(ratios):.2f}); "
        f"{max(op_rates) / max(bare_rates):.2f} best against best; load average {_load()}"
    )
    print(f"ratio {ratio:.2f} (target >= 0.80) {'OK' if ratio >= 0.8 else 'BELOW TARGET'}")
    return 0


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


if __name__ == "__main__":
    sys.exit(main())
