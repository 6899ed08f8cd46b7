"""`flask --app app check`: probe every configured backend once and print ok/failed with the reason.

Besides the monitors, each package adds a probe of what it owns with `add_check(app, key, probe)`
(the rules file, Twilio, Alertmanager): a probe is a `BaseMonitor` whose `_check()` says what it
found or raises MonitorError, so it gets the same timeout, table line and exit code.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from monitors.base_monitor import BaseMonitor, MonitorError, Result

EXTENSION = "operator_checks"


def add_check(app: Flask, key: str, probe: BaseMonitor) -> None:
    """Run `probe` in `flask check` after the monitors, as the line `key`."""
    app.extensions.setdefault(EXTENSION, {})[key] = probe


def probe(monitors: dict[str, BaseMonitor]) -> list[tuple[str, Result]]:
    """Every monitor's live check (never the cache), concurrently, in registry order."""
    if not monitors:
        return []
    with ThreadPoolExecutor(max_workers=len(monitors)) as pool:
        results = list(pool.map(lambda m: m.check(), monitors.values()))
    return list(zip(monitors, results, strict=True))


def table(rows: list[tuple[str, Result]]) -> str:
    """Aligned lines: name, monitor, ok/FAILED, milliseconds, detail."""
    lines = [f"{'backend':<12} {'name':<5} {'result':<7} {'ms':>6}  detail"]
    for key, r in rows:
        state = "ok" if r.ok else "FAILED"
        detail = r.text if r.ok else r.error + (" (permanent)" if r.permanent else "")
        lines.append(f"{key:<12} {r.monitor:<5} {state:<7} {r.elapsed * 1000:>6.0f}  {detail}")
    return "\n".join(lines)


class OwnCheck(BaseMonitor):
    """A check of Operator itself from a function giving (ok, detail), e.g. the worker's heartbeat."""

    name = "self"

    def __init__(self, check: Callable[[], tuple[bool, str]]):
        super().__init__()
        self._own = check

    def _check(self) -> str:
        ok, detail = self._own()
        if not ok:
            raise MonitorError(detail)
        return detail


@click.command("check")
@with_appcontext
def check_command() -> None:
    """Probe every configured backend, the rules file, Twilio and Alertmanager; exit 1 when any fails."""
    monitors = {**current_app.extensions["operator"].monitors, **current_app.extensions.get(EXTENSION, {})}
    rows = probe(monitors)
    click.echo(table(rows))
    failed = [key for key, r in rows if not r.ok]
    if failed:
        click.echo(f"{len(failed)} of {len(rows)} check(s) failed: {', '.join(failed)}", err=True)
        raise SystemExit(1)
    click.echo(f"all {len(rows)} check(s) ok")
