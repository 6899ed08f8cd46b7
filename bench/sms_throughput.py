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
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil
import requests
from twilio.request_validator import RequestValidator

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.support.live_server import base_env  # noqa: E402
from tests.support.processes import running  # noqa: E402
from tests.support.servers import free_port  # noqa: E402

TOKEN = "bench-token-" + uuid.uuid4().hex
NUMBER = "+15555550100"
RATE_LIMIT = "1000000 per minute"
# CPUs that other processes may use during a round for it to count as quiet.
QUIET = 0.25


@dataclass(frozen=True)
class Server:
    name: str
    url: str
    pid: int  # the gunicorn arbiter


@contextmanager
def serve(name: str, app: str, workers: int, tmp: Path) -> Iterator[Server]:
    port = free_port()
    tmp.mkdir(parents=True, exist_ok=True)
    env = base_env(
        tmp,
        TWILIO_AUTH_TOKEN=TOKEN,
        AUTHORIZED_NUMBERS=f"{NUMBER}:admin",
        RATE_LIMIT=RATE_LIMIT,
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
    url = f"http://127.0.0.1:{port}"
    with running(cmd, url + "/livez", tmp / "gunicorn.log", 60, cwd=tmp, env=env) as proc:
        yield Server(name, url + "/sms", proc.pid)


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


@dataclass(frozen=True)
class Round:
    rate: float  # answered requests/s
    cpu_ms: float  # server CPU per answered request, all gunicorn processes
    other: float  # CPU (in cores) used meanwhile by processes outside this benchmark


def _busy() -> float:
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


def wait_for_quiet(limit: float, patience: float) -> float:
    """Wait (at most `patience` s) for a second in which other processes use under `limit` CPUs."""
    deadline = time.monotonic() + patience
    while True:
        busy = _busy()
        time.sleep(1.0)
        other = _busy() - busy  # nothing of ours runs between rounds
        if other < limit or time.monotonic() > deadline:
            return other


def measure(server: Server, servers: tuple[Server, ...], threads: int, seconds: float) -> Round:
    """One round of load on `server`; stops on any failed request."""
    me = psutil.Process()

    def ours() -> float:
        return sum(cpu_seconds(s.pid) for s in servers) + sum(me.cpu_times()[:2])

    busy, mine, own = _busy(), ours(), cpu_seconds(server.pid)
    started = time.monotonic()
    rate, failed, done = drive(server.url, threads, seconds)
    elapsed = time.monotonic() - started
    if failed:
        raise SystemExit(f"{server.name}: {failed} requests failed; see its gunicorn.log")
    other = max(0.0, (_busy() - busy) - (ours() - mine)) / elapsed
    return Round(rate, 1000 * (cpu_seconds(server.pid) - own) / max(done, 1), other)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="length of one round per server")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of load before measuring")
    parser.add_argument(
        "--quiet",
        type=float,
        default=QUIET,
        help="a round is quiet when other processes used under this many CPUs during it",
    )
    parser.add_argument("--patience", type=float, default=20.0, help="seconds to wait for quiet per round")
    args = parser.parse_args()
    print(
        f"gunicorn -c production.py, WEB_CONCURRENCY={args.workers}, {args.threads} client threads, "
        f"{args.rounds} rounds of {args.seconds:g}s per server (order alternating) after a "
        f"{args.warmup:g}s warm-up; store SQLite; RATE_LIMIT={RATE_LIMIT!r} (one sender, never "
        f"throttled: every request runs and is audited); {psutil.cpu_count()} CPUs"
    )
    rounds: list[tuple[Round, Round]] = []
    with (
        tempfile.TemporaryDirectory(prefix="operator-bench-") as tmp,
        serve("operator", "app:create_app()", args.workers, Path(tmp) / "operator") as operator,
        serve("bare", "bare_app:create_app()", args.workers, Path(tmp) / "bare") as bare,
    ):
        servers = (operator, bare)
        for server in servers:
            drive(server.url, args.threads, args.warmup)  # connections, imports, SQLite pages
        # Both servers in every round, back to back in alternating order, so other load on the
        # machine (or a slow minute) hits them alike; each round gives one ratio.
        print("round  operator req/s  bare req/s  ratio  CPU ms/req: operator  bare  other load (CPUs)")
        for i in range(args.rounds):
            wait_for_quiet(args.quiet, args.patience)
            order = servers if i % 2 == 0 else servers[::-1]
            result = {s.name: measure(s, servers, args.threads, args.seconds) for s in order}
            op, base = result["operator"], result["bare"]
            rounds.append((op, base))
            noisy = "" if max(op.other, base.other) < args.quiet else "  (not quiet)"
            print(
                f"{i + 1:>5}  {op.rate:>14.1f}  {base.rate:>10.1f}  {op.rate / base.rate:>5.2f}  "
                f"{op.cpu_ms:>20.2f}  {base.cpu_ms:>4.2f}  {op.other:>8.2f} / {base.other:.2f}{noisy}"
            )
    ratios = [op.rate / base.rate for op, base in rounds]
    quiet = [op.rate / base.rate for op, base in rounds if max(op.other, base.other) < args.quiet]
    # The verdict comes from the quiet rounds when there are enough of them: with other jobs on
    # the cores the ratio drifts towards the ratio of CPU per request, whatever the code does.
    ratio = statistics.median(quiet if len(quiet) >= 3 else ratios)

    def median(pick) -> float:
        return statistics.median(pick(pair) for pair in rounds)

    op_rate, bare_rate = median(lambda p: p[0].rate), median(lambda p: p[1].rate)
    op_cpu, bare_cpu = median(lambda p: p[0].cpu_ms), median(lambda p: p[1].cpu_ms)
    best_op, best_bare = max(p[0].rate for p in rounds), max(p[1].rate for p in rounds)
    print(
        f"operator, signed help  : {op_rate:7.1f} req/s median, {best_op:7.1f} best, {op_cpu:.2f} ms CPU/req"
    )
    print(
        f"bare Flask, fixed TwiML: {bare_rate:7.1f} req/s median, {best_bare:7.1f} best, "
        f"{bare_cpu:.2f} ms CPU/req"
    )
    print(
        f"ratio, all rounds  : median {statistics.median(ratios):.2f} of {len(ratios)} "
        f"(spread {min(ratios):.2f}-{max(ratios):.2f}); best against best {best_op / best_bare:.2f}"
    )
    if quiet:
        print(
            f"ratio, quiet rounds: median {statistics.median(quiet):.2f} of {len(quiet)} "
            f"(spread {min(quiet):.2f}-{max(quiet):.2f}; other load under {args.quiet:g} CPUs)"
        )
    basis = "quiet rounds" if len(quiet) >= 3 else "all rounds (too few quiet ones: a busy machine)"
    verdict = "OK" if ratio >= 0.8 else "BELOW TARGET"
    print(f"ratio {ratio:.2f} (median of {basis}), target >= 0.80: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
