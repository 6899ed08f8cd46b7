"""The contract every backend monitor implements.

A monitor subclasses `BaseMonitor`, sets `name` (the short word shown in `status`, e.g. "prom")
and implements:

- `_check() -> str`: one short status line body ("ok 12/13 up (down: node-3)"), or raise.
- `_query(what: str, args: list[str]) -> str`: details for a command ("metrics cpu" calls
  `query("cpu", [])`), or raise. Optional; the default says the monitor has no queries.
- `_value(query: str) -> float | None`: one number for alert rules (a named or raw PromQL
  query, a database metric, an NRQL query, an API field), None for "no data", or raise.
  Optional; the default raises a permanent MonitorError.

Inside, a monitor raises `MonitorError(message, permanent=...)` for anything the user should
read ("auth refused", "bad query"): `permanent=True` means retrying will not help. The public
`check()` and `query()` never raise: they run the call with the monitor's timeout and return a
`Result` whose `ok` is False with a short `error` on failure, timeout included. Unexpected
exceptions are logged with their traceback and become a generic error.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Self

if TYPE_CHECKING:
    from config import Settings
    from monitors.cache import MonitorCache

logger = logging.getLogger(__name__)

# Shared by all monitors of a process: a hung backend holds one thread until its own
# socket timeout fires, while callers stop waiting at the monitor's timeout.
_pool = ThreadPoolExecutor(max_workers=32, thread_name_prefix="monitor")


class MonitorError(Exception):
    """A failure worth telling the user about, in their words."""

    def __init__(self, message: str, permanent: bool = False):
        super().__init__(message)
        self.message = message
        self.permanent = permanent


@dataclass(frozen=True)
class Result:
    monitor: str
    ok: bool
    text: str = ""
    error: str = ""
    permanent: bool = False
    elapsed: float = 0.0
    fetched_at: float = field(default_factory=time.time)
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def line(self) -> str:
        """The status line: "prom ok 12/13 up" or "prom ERROR connection refused"."""
        return f"{self.monitor} {self.text}" if self.ok else f"{self.monitor} ERROR {self.error}"


class BaseMonitor:
    """Base for all monitors; see the module docstring for the contract."""

    name = "base"
    description = ""
    # The short cache shared by every worker; build_monitors sets it, a bare monitor asks each time.
    cache: MonitorCache | None = None

    def __init__(self, timeout: float = 4.0):
        self.timeout = timeout

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        """The configured monitor; monitors with settings of their own override this."""
        return cls(timeout=settings.monitor_timeout)

    def _check(self) -> str:
        raise NotImplementedError

    def _query(self, what: str, args: list[str]) -> str:
        raise MonitorError(f"{self.name} has no queries", permanent=True)

    @classmethod
    def gives_values(cls) -> bool:
        """Whether this backend implements `_value`, so alert rules can use it."""
        return cls._value is not BaseMonitor._value

    def _value(self, query: str) -> float | None:
        raise MonitorError(f"{self.name} has no numeric values for rules", permanent=True)

    def check(self) -> Result:
        """Status line as a Result; never raises."""
        return self._run(self._check)

    def query(self, what: str, args: list[str] | None = None) -> Result:
        """Details as a Result; never raises."""
        return self._run(lambda: self._query(what, list(args or [])))

    def value(self, query: str) -> Result:
        """A number for alert rules in `data["value"]` (None when there is no data); never raises."""
        result = self._run(lambda: self._value(query))
        if not result.ok:
            return result
        value = result.text
        return Result(
            self.name,
            True,
            text="no data" if value is None else f"{value:g}",
            elapsed=result.elapsed,
            data={"value": value},
        )

    def close(self) -> None:
        """Release sockets and pools."""

    def _run(self, call: Callable[[], Any]) -> Result:
        started = time.monotonic()
        future = _pool.submit(call)
        try:
            text = future.result(timeout=self.timeout)
        except FutureTimeout:
            future.cancel()
            return self._failed(f"timeout after {self.timeout:g}s", started)
        except MonitorError as exc:
            return self._failed(exc.message, started, exc.permanent)
        except Exception:
            logger.exception("monitor %s failed unexpectedly", self.name)
            return self._failed("internal error, see logs", started)
        return Result(self.name, True, text=text, elapsed=time.monotonic() - started)

    def _failed(self, error: str, started: float, permanent: bool = False) -> Result:
        return Result(self.name, False, error=error, permanent=permanent, elapsed=time.monotonic() - started)
