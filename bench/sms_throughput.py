"""Requests/s of signed `help` texts on the production gunicorn config vs a bare Flask route.

Both servers run `gunicorn -c production.py` with the same WEB_CONCURRENCY, one after the other in
this process, driven by the same load (a pool of threads, one requests.Session each, loopback only,
every request signed with Twilio's RequestValidator). Prints both rates and their ratio (target
>= 0.8). The Operator run uses SQLite (the default store) and a RATE_LIMIT high enough that the
single sending number is never throttled, so every request runs the command and is audited.

    python bench/sms_throughput.py [--seconds 8] [--threads 16] [--workers 4]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from contextlib import closing, contextmanager
from pathlib import Path

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


@contextmanager
def serve(app: str, workers: int, tmp: Path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROMETHEUS_MULTIPROC")}
    for line in (REPO / ".env.example").read_text().splitlines():
        name, sep, _ = line.partition("=")
        if sep and not name.startswith("#"):
            env[name.strip()] = ""
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
        yield url + "/sms"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def drive(url: str, threads: int, seconds: float) -> tuple[float, int]:
    """Requests/s of signed `help` POSTs from `threads` clients for `seconds`; and the failures."""
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
    return sum(done) / (time.monotonic() - started), sum(failed)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="length of one round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()
    print(
        f"gunicorn -c production.py, WEB_CONCURRENCY={args.workers}, {args.threads} client threads, "
        f"{args.rounds} alternating rounds of {args.seconds:g}s, best round counts; store SQLite; "
        f"RATE_LIMIT={RATE_LIMIT!r} (one sender, never throttled: every request runs and is audited)"
    )
    with (
        tempfile.TemporaryDirectory(prefix="operator-bench-") as tmp,
        serve("app:create_app()", args.workers, Path(tmp) / "operator") as operator_url,
        serve("bare_app:create_app()", args.workers, Path(tmp) / "bare") as bare_url,
    ):
        rates: dict[str, list[float]] = {"operator": [], "bare": []}
        for url in (operator_url, bare_url):
            drive(url, args.threads, 1.5)  # warm-up: connections, imports, SQLite pages
        # Alternating rounds, best of each: other load on the machine hits both alike.
        for _ in range(args.rounds):
            for name, url in (("operator", operator_url), ("bare", bare_url)):
                rate, failed = drive(url, args.threads, args.seconds)
                if failed:
                    raise SystemExit(f"{name}: {failed} requests failed")
                rates[name].append(rate)
    operator, bare = max(rates["operator"]), max(rates["bare"])
    print(
        f"operator, signed help : {operator:8.1f} req/s  (rounds: {', '.join(f'{r:.0f}' for r in rates['operator'])})"
    )
    print(
        f"bare Flask, fixed TwiML: {bare:8.1f} req/s  (rounds: {', '.join(f'{r:.0f}' for r in rates['bare'])})"
    )
    ratio = operator / bare
    print(f"ratio {ratio:.2f} (target >= 0.80) {'OK' if ratio >= 0.8 else 'BELOW TARGET'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
