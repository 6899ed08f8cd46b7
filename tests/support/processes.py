"""Start a real server process on a free loopback port for a test, and always stop it."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from tests.support.servers import unavailable


@contextmanager
def running(
    cmd: list[str],
    ready_url: str,
    log_path: str | Path,
    timeout: float = 30.0,
    cwd: str | Path | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[subprocess.Popen]:
    """Run `cmd` until `ready_url` answers 200; skip (fail under CI) when the binary is missing."""
    if shutil.which(cmd[0]) is None:
        unavailable(f"{cmd[0]} is not installed (apt-get install {cmd[0]})")
    name = cmd[2] if len(cmd) > 2 and cmd[1] == "-m" else Path(cmd[0]).name
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)

    def tail() -> str:
        return Path(log_path).read_text(errors="replace")[-3000:]

    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{tail()}")
            try:
                if requests.get(ready_url, timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} not ready at {ready_url} after {timeout}s:\n{tail()}")
            time.sleep(0.1)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
