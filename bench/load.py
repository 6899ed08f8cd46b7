"""Load on the production stack: 200 Alertmanager webhooks at once, then 50 signed texts a second.

The stack is what `make run` starts: `gunicorn -c production.py` with its default WEB_CONCURRENCY
and WEB_THREADS (tests/support/live_server.py), one `flask worker` sending pages to the Twilio fake
(tests/support/fakes/twilio_api.py, on a real socket). The load comes from wrk (C), never from
Python threads, so the client is not what saturates:

1. webhook_burst.lua: --webhooks connections each post one Alertmanager notification carrying a new
   alert, all at once; each is stored with its pages in one transaction before the 200.
2. paced_bodies.lua: --rate signed texts a second for --seconds, each with its own MessageSid
   (bodies signed ahead, as for sms_throughput.py), sent on a schedule rather than as fast as
   answers come, cycling through help, alerts and status.

Printed: errors (the verdict needs 0), p50/p99 reply latency as wrk measured it, the achieved rate,
peak RSS and USS of every gunicorn worker and of the worker process (sampled each half second), and
the store afterwards: every alert stored, every page sent, every text with a final row.

    python bench/load.py [--store sqlite|postgres] [--seconds 60] [--webhooks 200] [--rate 50] [--quick]
                         [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import psutil
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import results  # noqa: E402

from core import db  # noqa: E402
from inbound.audit import Outcome, messages  # noqa: E402
from incidents.records import alerts  # noqa: E402
from outbox.queue import Delivery, outbox  # noqa: E402
from tests.support.fakes.twilio_api import FakeTwilio  # noqa: E402
from tests.support.live_server import gunicorn  # noqa: E402
from tests.support.phones import ADMIN, TOKEN  # noqa: E402
from tests.support.servers import fresh_postgres_database  # noqa: E402
from tests.support.workers import start_worker, stop_worker, worker_env  # noqa: E402

HERE = Path(__file__).resolve().parent
ACCOUNT = "AC" + "1" * 32
ALERTMANAGER_TOKEN = "bench-alertmanager-" + uuid.uuid4().hex
WEB_CONCURRENCY = 2  # production.py's default
TEXTS = ("help", "alerts", "status")
RESULT = re.compile(r"RESULT requests=(\d+) non2xx=(\d+) errors=(\d+) p50_us=(\d+) p99_us=(\d+)")
MIB = 1 << 20


@dataclass(frozen=True)
class Run:
    requests: int
    non2xx: int
    errors: int
    p50_ms: float
    p99_ms: float
    seconds: float
    output: str


def wrk(script: str, url: str, args: list[str], threads: int, connections: int, seconds: float,
        finished: int = 0) -> Run:  # fmt: skip
    """One wrk run; `args` go to the Lua script's init(). With `finished`, it is interrupted once
    that many DONE lines came (wrk would otherwise wait out -d; SIGINT still makes it report)."""
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "30s"]
    cmd += ["-s", str(HERE / script), url, "--", *args]
    started = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    output, done, elapsed = [], 0, 0.0
    for line in proc.stdout:
        output.append(line)
        if line.strip() == "DONE":
            done += 1
            if done == finished:
                elapsed = time.monotonic() - started
                proc.send_signal(signal.SIGINT)
    proc.wait()
    elapsed = elapsed or time.monotonic() - started
    text = "".join(output)
    found = RESULT.search(text)
    if not found:
        raise SystemExit(f"wrk failed ({proc.returncode}):\n{text}")
    requests, non2xx, errors, p50, p99 = map(int, found.groups())
    return Run(requests, non2xx, errors, p50 / 1000, p99 / 1000, elapsed, text)


@dataclass
class Peak:
    role: str
    rss: int = 0
    uss: int = 0


@dataclass
class Sampler:
    """Peak RSS and USS per process, sampled until stopped; processes are found anew each time."""

    processes: Callable[[], list[tuple[str, psutil.Process]]]
    interval: float = 0.5
    peaks: dict[int, Peak] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> Sampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def sample(self) -> None:
        for role, proc in self.processes():
            try:
                info = proc.memory_full_info()
            except psutil.Error:
                continue
            peak = self.peaks.setdefault(proc.pid, Peak(role))
            peak.rss, peak.uss = max(peak.rss, info.rss), max(peak.uss, info.uss)

    def of(self, role: str) -> list[Peak]:
        return [p for p in self.peaks.values() if p.role == role]


def stack_processes(worker: subprocess.Popen) -> Callable[[], list[tuple[str, psutil.Process]]]:
    def found() -> list[tuple[str, psutil.Process]]:
        procs: list[tuple[str, psutil.Process]] = [("worker", psutil.Process(worker.pid))]
        for child in psutil.Process().children():
            try:
                if "gunicorn" not in " ".join(child.cmdline()):
                    continue
                procs.append(("arbiter", child))
                procs += [("gunicorn worker", p) for p in child.children()]
            except psutil.Error:
                continue
        return procs

    return found


def write_alerts(path: Path, count: int) -> list[str]:
    """`count` Alertmanager notifications, one new alert each; returns their alertnames."""
    run = uuid.uuid4().hex[:8]
    names = [f"Load{run}n{i}" for i in range(count)]
    with path.open("w") as out:
        for i, name in enumerate(names):
            alert = {
                "status": "firing",
                "labels": {
                    "alertname": name,
                    "instance": f"host-{i}:9100",
                    "job": "node",
                    "severity": "page",
                },
                "annotations": {"summary": f"{name} is failing"},
                "startsAt": "2026-01-01T00:00:00.123456789Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus:9090/graph?g0.expr=up",
                "fingerprint": f"{run}{i:08x}",
            }
            body = {
                "version": "4",
                "groupKey": f'{{}}:{{alertname="{name}"}}',
                "status": "firing",
                "truncatedAlerts": 0,
                "receiver": "operator",
                "groupLabels": {"alertname": name},
                "commonLabels": alert["labels"],
                "commonAnnotations": alert["annotations"],
                "externalURL": "http://alertmanager:9093",
                "alerts": [alert],
            }
            out.write(json.dumps(body) + "\n")
    return names


def write_texts(path: Path, url: str, count: int) -> list[str]:
    """`count` signed texts as paced_bodies.lua reads them; returns their MessageSids."""
    validator = RequestValidator(TOKEN)
    sids = []
    with path.open("w") as out:
        for i in range(count):
            params = {
                "MessageSid": "SM" + uuid.uuid4().hex,
                "AccountSid": ACCOUNT,
                "From": ADMIN,
                "To": "+15005550006",
                "Body": TEXTS[i % len(TEXTS)],
                "NumMedia": "0",
            }
            sids.append(params["MessageSid"])
            out.write(f"{validator.compute_signature(url, params)}\t{urlencode(params)}\n")
    return sids


@dataclass(frozen=True)
class Store:
    alerts: int
    pages: int
    pages_sent: int
    texts: int
    texts_final: int
    outcomes: dict[str, int]


def read_store(engine, names: list[str], sids: list[str]) -> Store:
    with engine.connect() as conn:
        ids = conn.execute(select(alerts.c.id).where(alerts.c.name.in_(names))).scalars().all()
        pages = dict(
            conn.execute(
                select(outbox.c.status, func.count())
                .where(outbox.c.alert_id.in_(ids))
                .group_by(outbox.c.status)
            ).all()
        )
        outcomes = dict(
            conn.execute(
                select(messages.c.outcome, func.count())
                .where(messages.c.message_sid.in_(sids))
                .group_by(messages.c.outcome)
            ).all()
        )
    sent = sum(n for status, n in pages.items() if status in (Delivery.SENT, Delivery.DELIVERED))
    texts = sum(outcomes.values())
    final = texts - outcomes.get(Outcome.PROCESSING, 0)
    return Store(len(set(ids)), sum(pages.values()), sent, texts, final, outcomes)


def settle(read: Callable[[], Store], done: Callable[[Store], bool], timeout: float) -> Store:
    deadline = time.monotonic() + timeout
    while not done(store := read()) and time.monotonic() < deadline:
        time.sleep(0.5)
    return store


def mib(n: float) -> str:
    return f"{n / MIB:.0f}"


@dataclass(frozen=True)
class Measured:
    burst: Run
    texts: Run
    store: Store
    drained: float  # seconds from the burst's start until the store was checked
    sampler: Sampler


def measure(args: argparse.Namespace, tmp: Path) -> Measured:
    """Start the stack in `tmp`, run the burst and then the texts, and read the store."""
    # wrk opens connections/threads per thread; two threads when the burst splits evenly.
    burst_threads = 2 if args.webhooks % 2 == 0 else 1
    drop = None
    if args.store == "postgres":
        try:
            database_url, drop = fresh_postgres_database()
        except BaseException as exc:  # noqa: BLE001 - pytest's skip is a BaseException
            raise SystemExit(f"PostgreSQL unavailable: {exc}") from None
    else:
        database_url = f"sqlite:///{tmp}/operator.db"
    fake = FakeTwilio(ACCOUNT, TOKEN).start()
    (tmp / "no-rules.yml").write_text("rules: []\n")
    env = worker_env(tmp, fake, database_url, OPERATOR_CONFIG=str(tmp / "no-rules.yml"),
                     ALERTMANAGER_TOKEN=ALERTMANAGER_TOKEN, RATE_LIMIT="1000000 per minute")  # fmt: skip
    engine = db.make_engine(database_url)
    try:
        with gunicorn(tmp, env, workers=WEB_CONCURRENCY) as url:
            env["PUBLIC_URL"] = url
            worker = start_worker(tmp, env)
            names = write_alerts(tmp / "alerts.txt", args.webhooks)
            count = int(args.rate * args.seconds * 1.1) + args.connections
            sids = write_texts(tmp / "texts.txt", url + "/sms", count)
            print(
                f"load: gunicorn -c production.py (WEB_CONCURRENCY={WEB_CONCURRENCY}, WEB_THREADS default), "
                f"one worker, the Twilio fake; store {args.store}; {psutil.cpu_count()} CPUs"
            )
            try:
                with Sampler(stack_processes(worker)) as sampler:
                    burst_at = time.monotonic()
                    burst = wrk("webhook_burst.lua", url + "/webhook/alertmanager",
                                [str(tmp / "alerts.txt"), str(burst_threads),
                                 str(args.webhooks // burst_threads), ALERTMANAGER_TOKEN],
                                burst_threads, args.webhooks, 120, finished=burst_threads)  # fmt: skip
                    texts = wrk("paced_bodies.lua", url + "/sms",
                                [str(tmp / "texts.txt"), "1", f"{args.rate:g}"],
                                1, args.connections, args.seconds)  # fmt: skip
                    store = settle(
                        lambda: read_store(engine, names, sids),
                        lambda s: s.pages_sent == s.pages and s.texts_final == s.texts,
                        60,
                    )
                    drained = time.monotonic() - burst_at
            finally:
                stop_worker(worker)
    finally:
        engine.dispose()
        fake.stop()
        if drop:
            drop()
    return Measured(burst, texts, store, drained, sampler)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the texting phase")
    parser.add_argument("--rate", type=float, default=50.0, help="signed texts a second")
    parser.add_argument("--webhooks", type=int, default=200, help="notifications posted at once")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections for the texts")
    parser.add_argument("--quick", action="store_true", help="make bench's short run: 15 s of texts")
    results.add_option(parser)
    args = parser.parse_args()
    if args.quick:
        args.seconds = min(args.seconds, 15.0)
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    tmp = Path(tempfile.mkdtemp(prefix="operator-load-"))
    got = measure(args, tmp)
    burst, texts, store, drained, sampler = got.burst, got.texts, got.store, got.drained, got.sampler
    workers = sampler.of("gunicorn worker")
    (own,) = sampler.of("worker") or [Peak("worker")]
    rate = texts.requests / args.seconds
    errors = burst.non2xx + burst.errors + texts.non2xx + texts.errors
    lost = (store.alerts != args.webhooks or store.pages_sent != store.pages or store.pages == 0
            or store.texts < texts.requests or store.texts_final != store.texts)  # fmt: skip
    print(
        f"webhooks: {args.webhooks} posted at once: {burst.requests} answered in {burst.seconds:.1f} s, "
        f"{burst.non2xx} non-2xx, {burst.errors} socket errors; p50 {burst.p50_ms:.0f} ms, "
        f"p99 {burst.p99_ms:.0f} ms"
    )
    print(
        f"texts: {args.rate:g}/s for {args.seconds:g} s: {texts.requests} answered ({rate:.1f}/s achieved), "
        f"{texts.non2xx} non-2xx, {texts.errors} socket errors; p50 {texts.p50_ms:.1f} ms, "
        f"p99 {texts.p99_ms:.1f} ms"
    )
    print(
        "memory, peak RSS/USS in MiB: gunicorn workers "
        + ", ".join(f"{mib(p.rss)}/{mib(p.uss)}" for p in workers)
        + f"; worker process {mib(own.rss)}/{mib(own.uss)}"
    )
    print(
        f"store: {store.alerts}/{args.webhooks} alerts stored, {store.pages_sent}/{store.pages} pages sent "
        f"(checked {drained:.0f} s after the burst began); {store.texts} texts stored for {texts.requests} answered, "
        f"{store.texts_final} with a final row ({', '.join(f'{k} {v}' for k, v in sorted(store.outcomes.items()))})"
    )
    ok = not errors and not lost
    print(
        f"verdict: {'OK' if ok else 'FAILED'} ({errors} errors; {'nothing' if not lost else 'something'} lost)"
    )
    if ok:
        shutil.rmtree(tmp)
    else:
        print(f"logs kept in {tmp}")
    peak_worker = max(workers, key=lambda p: p.rss, default=Peak("gunicorn worker"))
    results.write(
        args.json,
        f"load ({args.store})",
        [
            ("errors (webhooks + texts)", str(errors), "0"),
            (
                f"{args.webhooks} webhooks at once: p50 / p99",
                f"{burst.p50_ms:.0f} / {burst.p99_ms:.0f} ms",
                "",
            ),
            (f"texts at {args.rate:g}/s: achieved", f"{rate:.1f}/s", f"{args.rate:g}/s"),
            ("texts: p50 / p99 reply", f"{texts.p50_ms:.1f} / {texts.p99_ms:.1f} ms", ""),
            (
                "peak RSS / USS per gunicorn worker",
                f"{mib(peak_worker.rss)} / {mib(peak_worker.uss)} MiB",
                "",
            ),
            ("peak RSS / USS of the worker process", f"{mib(own.rss)} / {mib(own.uss)} MiB", ""),
            (
                "store: alerts, pages sent, texts final",
                f"{store.alerts}, {store.pages_sent}/{store.pages}, {store.texts_final}/{store.texts}",
                "all",
            ),  # fmt: skip
        ],
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
