"""`flask --app app worker` as a real subprocess for a test, and the waiting that goes with it."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def start_worker(cwd: Path, env: dict[str, str], name: str = "worker") -> subprocess.Popen:
    """Start a worker in `cwd`, its output appended to `<name>.log` there."""
    log = open(cwd / f"{name}.log", "ab")  # noqa: SIM115 - the child holds it
    return subprocess.Popen([sys.executable, "-m", "flask", "--app", "app", "worker"], env=env, cwd=cwd,
                            stdout=log, stderr=subprocess.STDOUT)  # fmt: skip


def stop_worker(proc: subprocess.Popen) -> int:
    """SIGTERM (a clean stop) and its exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=20)


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    """Poll `condition` until it is truthy and return it; fail naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        time.sleep(0.1)
    return result
