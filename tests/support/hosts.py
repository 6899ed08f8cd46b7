"""Several hosts on one machine: network namespaces on a private bridge, made and removed by a test.

Each host is a namespace with one veth on a bridge that lives in a namespace of its own; this test
process joins the bridge with one address too, so it can reach every host. Traffic stays on
those addresses and loopback: nothing is routed to the machine's own interfaces.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.servers import free_port, unavailable

PG_BIN = next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)), None)


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


@dataclass
class Host:
    name: str
    namespace: str
    address: str
    processes: list[subprocess.Popen] = field(default_factory=list)
    scratch: list[Path] = field(default_factory=list)  # removed with the network

    def start(self, cmd: list[str], log: Path, env: dict[str, str], cwd: Path) -> subprocess.Popen:
        """`cmd` inside this host (`ip netns exec` execs it: the pid is the program's own)."""
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                ["ip", "netns", "exec", self.namespace, *cmd],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=cwd,
            )
        self.processes.append(proc)
        return proc


class Network:
    """A /24 of hosts; `self.address` is this test process's own address on it."""

    def __init__(self) -> None:
        if os.geteuid() != 0 or shutil.which("ip") is None:
            unavailable("network namespaces need root and iproute2 (apt-get install iproute2)")
        self.tag = uuid.uuid4().hex[:5]
        self.subnet = f"10.{200 + int(self.tag[:2], 16) % 50}.{int(self.tag[2:4], 16)}"
        self.lan = f"op{self.tag}-lan"
        self.hosts: dict[str, Host] = {}
        self._links: list[str] = []
        try:
            _ip("netns", "add", self.lan)
        except subprocess.CalledProcessError as exc:
            unavailable(f"cannot create a network namespace: {exc.stderr.strip()}")
        _ip("-n", self.lan, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.lan, "link", "set", "br0", "up")
        # This process's own leg: veth in the root namespace, its peer on the bridge.
        here, there = f"op{self.tag}r0", f"op{self.tag}r1"
        _ip("link", "add", here, "type", "veth", "peer", "name", there)
        self._links.append(here)
        _ip("link", "set", there, "netns", self.lan)
        _ip("-n", self.lan, "link", "set", there, "master", "br0", "up")
        self.address = f"{self.subnet}.1"
        _ip("addr", "add", f"{self.address}/24", "dev", here)
        _ip("link", "set", here, "up")

    def host(self, name: str) -> Host:
        number = len(self.hosts) + 2
        namespace = f"op{self.tag}-{name}"
        _ip("netns", "add", namespace)
        inside, bridge = f"op{self.tag}h{number}", f"op{self.tag}b{number}"
        _ip("link", "add", inside, "type", "veth", "peer", "name", bridge)
        _ip("link", "set", bridge, "netns", self.lan)
        _ip("-n", self.lan, "link", "set", bridge, "master", "br0", "up")
        _ip("link", "set", inside, "netns", namespace)
        address = f"{self.subnet}.{number}"
        _ip("-n", namespace, "addr", "add", f"{address}/24", "dev", inside)
        _ip("-n", namespace, "link", "set", inside, "up")
        _ip("-n", namespace, "link", "set", "lo", "up")
        host = Host(name, namespace, address)
        self.hosts[name] = host
        return host

    def cut(self, host: Host, connected: bool = False) -> None:
        """Unplug `host` from the bridge (or plug it back): its processes keep running."""
        number = host.address.rsplit(".", 1)[1]
        _ip("-n", self.lan, "link", "set", f"op{self.tag}b{number}", "up" if connected else "down")

    def close(self) -> None:
        for host in self.hosts.values():
            for proc in host.processes:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            for proc in host.processes:
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        for host in self.hosts.values():
            subprocess.run(["ip", "netns", "del", host.namespace], capture_output=True)
            for path in host.scratch:
                shutil.rmtree(path, ignore_errors=True)
        subprocess.run(["ip", "netns", "del", self.lan], capture_output=True)
        for link in self._links:
            subprocess.run(["ip", "link", "del", link], capture_output=True)


@contextmanager
def network() -> Iterator[Network]:
    net = Network()
    try:
        yield net
    finally:
        net.close()


def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.1)


def postgres_on(host: Host, tmp: Path) -> str:
    """A new PostgreSQL cluster serving on `host`'s address; returns its URL."""
    if PG_BIN is None or shutil.which("runuser") is None:
        unavailable("PostgreSQL server binaries are not installed (apt-get install postgresql)")
    # The server refuses to run as root and needs a data directory its own user can reach.
    data = Path(tempfile.mkdtemp(prefix="operator-pg-", dir="/tmp"))
    host.scratch.append(data)
    shutil.chown(data, "postgres", "postgres")
    subprocess.run(
        ["runuser", "-u", "postgres", "--", str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust"]
        + ["-U", "postgres", "--no-sync"],
        check=True,
        capture_output=True,
    )
    subnet = host.address.rsplit(".", 1)[0] + ".0/24"
    with open(data / "pg_hba.conf", "a") as hba:
        hba.write(f"host all all {subnet} trust\n")
    cmd = ["runuser", "-u", "postgres", "--", str(PG_BIN / "postgres"), "-D", str(data)]
    cmd += ["-h", host.address, "-p", "5432", "-k", str(data), "-c", "fsync=off", "-c", "max_connections=200"]
    host.start(cmd, tmp / f"postgres-{host.name}.log", dict(os.environ), tmp)
    ready = [str(PG_BIN / "pg_isready"), "-q", "-h", host.address, "-p", "5432"]
    wait_until(lambda: subprocess.run(ready).returncode == 0, 30, f"PostgreSQL on {host.address}")
    return f"postgresql+psycopg://postgres@{host.address}:5432/postgres"


def redis_on(host: Host, tmp: Path) -> str:
    """A Redis serving on `host`'s address; returns its URL."""
    if shutil.which("redis-server") is None:
        unavailable("redis-server is not installed (apt-get install redis-server)")
    cmd = ["redis-server", "--bind", host.address, "--port", "6379", "--save", "", "--appendonly", "no"]
    cmd += ["--protected-mode", "no", "--dir", str(tmp)]
    host.start(cmd, tmp / f"redis-{host.name}.log", dict(os.environ), tmp)
    ping = ["redis-cli", "-h", host.address, "ping"]
    wait_until(lambda: subprocess.run(ping, capture_output=True).returncode == 0, 30, "Redis")
    return f"redis://{host.address}:6379/0"


class PrivatePostgres:
    """A PostgreSQL cluster of this test's own on a free loopback port, to stop and start at will."""

    def __init__(self, tmp: Path):
        if PG_BIN is None or shutil.which("runuser") is None:
            unavailable("PostgreSQL server binaries are not installed (apt-get install postgresql)")
        if os.geteuid() != 0:
            unavailable("a private PostgreSQL cluster is started as the postgres user, which needs root")
        self.port = free_port()
        self.log = tmp / f"postgres-{self.port}.log"
        self.data = Path(tempfile.mkdtemp(prefix="operator-pg-", dir="/tmp"))
        shutil.chown(self.data, "postgres", "postgres")
        initdb = [str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync"]
        subprocess.run(["runuser", "-u", "postgres", "--", *initdb], check=True, capture_output=True)
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        self.proc: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        cmd = ["runuser", "-u", "postgres", "--", str(PG_BIN / "postgres"), "-D", str(self.data)]
        cmd += ["-h", "127.0.0.1", "-p", str(self.port), "-k", str(self.data)]
        cmd += ["-c", "fsync=off", "-c", "max_connections=200"]
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        ready = [str(PG_BIN / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port)]
        wait_until(lambda: subprocess.run(ready).returncode == 0, 30, f"PostgreSQL on port {self.port}")

    def stop(self) -> None:
        """A fast shutdown, as `systemctl restart postgresql` does: sessions are cut, nothing is lost."""
        if self.proc is not None and self.proc.poll() is None:
            # The postmaster itself: runuser does not pass signals on.
            postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
            os.kill(postmaster, signal.SIGINT)
            self.proc.wait(timeout=30)
        self.proc = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.data, ignore_errors=True)


class PrivateRedis:
    """A redis-server of this test's own on a free loopback port, to kill or freeze."""

    def __init__(self, tmp: Path):
        if shutil.which("redis-server") is None:
            unavailable("redis-server is not installed (apt-get install redis-server)")
        self.port, self.tmp = free_port(), tmp
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        cmd = ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", ""]
        cmd += ["--appendonly", "no", "--dir", str(self.tmp)]
        with open(self.tmp / f"redis-{self.port}.log", "ab") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        ping = ["redis-cli", "-p", str(self.port), "ping"]
        wait_until(lambda: subprocess.run(ping, capture_output=True).returncode == 0, 30, "Redis")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def freeze(self, frozen: bool = True) -> None:
        """SIGSTOP (or SIGCONT): the port stays open, nothing answers."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP if frozen else signal.SIGCONT)

    def close(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGCONT)
        self.kill()
