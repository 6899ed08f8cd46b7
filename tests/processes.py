"""Start a real server binary on a free loopback port for a test, and always stop it."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

import requests

from tests.servers import unavailable


@contextmanager
def running(
    cmd: list[str], ready_url: str, log_path: str, timeout: float = 30.0
) -> Iterator[subprocess.Popen]:
    """Run `cmd` until `ready_url` answers 200; skip (fail under CI) when the binary is missing."""
    if shutil.which(cmd[0]) is None:
        unavailable(f"{cmd[0]} is not installed (apt-get install {cmd[0]})")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{cmd[0]} exited with {proc.returncode}; see {log_path}")
            try:
                if requests.get(ready_url, timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{cmd[0]} not ready at {ready_url} after {timeout}s; see {log_path}")
            time.sleep(0.1)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
