"""`flask --app app check`: probe every configured backend once and print ok/failed with the reason.

Operator's own parts are reported after the backends (the worker's heartbeat): the package that
owns each fact adds its check from its init_app, since monitors may not import those packages.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from monitors.base_monitor import BaseMonitor, Result


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


# A check of Operator itself: (ok, detail), e.g. (False, "no worker heartbeat for 5m ...").
OwnCheck = Callable[[], tuple[bool, str]]
_OWN = "operator.checks"


def add_check(app: Flask, name: str, check: OwnCheck) -> None:
    """Have `check` report `name` after the backends; a failing one makes it exit 1."""
    app.extensions.setdefault(_OWN, {})[name] = check


def own_checks(app: Flask) -> list[tuple[str, bool, str]]:
    """(name, ok, detail) of every added check, in the order they were added."""
    checks: dict[str, OwnCheck] = app.extensions.get(_OWN, {})
    return [(name, *check()) for name, check in checks.items()]


@click.command("check")
@with_appcontext
def check_command() -> None:
    """Probe every configured backend; exit 1 when any fails."""
    monitors = current_app.extensions["operator"].monitors
    rows = probe(monitors)
    own = own_checks(current_app)
    click.echo(table(rows))
    for name, ok, detail in own:
        click.echo(f"{name:<12} {'':<5} {'ok' if ok else 'FAILED':<7} {'':>6}  {detail}")
    failed = [key for key, r in rows if not r.ok]
    if failed:
        click.echo(f"{len(failed)} of {len(rows)} backend(s) failed: {', '.join(failed)}", err=True)
    else:
        click.echo(f"all {len(rows)} backend(s) ok")
    broken = [name for name, ok, _ in own if not ok]
    if broken:
        click.echo(f"not ready: {', '.join(broken)}", err=True)
    if failed or broken:
        raise SystemExit(1)
