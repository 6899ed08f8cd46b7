"""The rules file, watched: re-read on change or on demand, the last good rules kept when it is bad.

config.py reads the YAML once for everything else; the rules are re-read here, deliberately, so
a worker picks up new rules without a restart. A file that cannot be used (not YAML, a rule with a
mistake, gone) never stops anything: the worker goes on with the last good rules (kept in the
store, so a restart with a bad file has them too), logs the problem and texts the admins once per
distinct mistake, whichever worker saw it first.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, Connection, Float, Integer, String, Table, Text, or_, select, update
from sqlalchemy.exc import IntegrityError

from config import ConfigError, read_rules
from core import db
from incidents import paging
from incidents.rules import Rule, parse_rules
from monitors import MONITORS, BaseMonitor, MonitorError
from outbox.queue import Kind
from services import Services

logger = logging.getLogger(__name__)

# One row: the last rules section that loaded, and the last bad file the admins were told about.
rule_files = Table(
    "rule_files",
    db.metadata,
    Column("id", Integer, primary_key=True),
    Column("good_section", Text),  # JSON
    Column("good_digest", String(64)),
    Column("loaded_at", Float),
    Column("bad_digest", String(64)),
    Column("bad_error", Text),
    Column("noticed_at", Float),
)
ROW = 1


def load_rules(services: Services, section: Any = None) -> list[Rule]:
    """`section` (else the file's, as read at start) validated; ConfigError names the rule and problem."""
    section = services.settings.file.get("rules") if section is None else section
    numeric = [name for name, (cls, _) in MONITORS.items() if cls.gives_values()]
    return parse_rules(section, services.settings, services.monitors, MONITORS, numeric)


@dataclass(frozen=True)
class Loaded:
    """What a (re)load gave: the rules to evaluate (None: none known), and the problem if any."""

    rules: list[Rule] | None
    problem: str = ""


class RuleFile:
    """OPERATOR_CONFIG's rules: `load()` at start, `changed()` to poll, `load()` again to reload."""

    def __init__(self, services: Services):
        self.services = services
        self.path = services.settings.operator_config
        self.seen: tuple[int, int, int] | None = self._stat()
        self.digest = ""  # of the content behind the rules in use

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            info = os.stat(self.path) if self.path else None
        except OSError:
            return None
        return (info.st_mtime_ns, info.st_size, info.st_ino) if info else None

    def changed(self) -> bool:
        """Whether the file was written, replaced or removed since it was last read (a stat call)."""
        return bool(self.path) and self._stat() != self.seen

    def load(self) -> Loaded:
        """Read and validate the rules now; on a mistake, the last good rules and the problem.

        Raises only when the store fails; the file then still counts as unread, so it is tried again.
        """
        seen = self._stat()
        try:
            section = read_rules(self.path) if self.path else self.services.settings.file.get("rules")
            rules = load_rules(self.services, section or [])
        except ConfigError as exc:
            loaded = self._bad(str(exc))
        else:
            digest = _digest(section)
            with self.services.engine.begin() as conn:
                _remember(conn, section, digest)
            if digest != self.digest:
                logger.info("rules loaded from %s: %d rule(s)", self.path or "settings", len(rules))
            self.digest, loaded = digest, Loaded(rules)
        self.seen = seen
        return loaded

    def _bad(self, problem: str) -> Loaded:
        rules = self._last_good()
        keeping = "no rules evaluated" if rules is None else f"the last good {len(rules)} rule(s) still run"
        logger.error("rules file not loaded: %s; %s", problem, keeping)
        admins = [n for n, role in self.services.settings.authorized.items() if role == "admin"]
        with self.services.engine.begin() as conn:
            if _first_notice(conn, _digest(problem), problem) and admins:
                paging.notify(conn, admins, f"Rules file not loaded, {keeping}. {self._short(problem)}",
                              Kind.NOTICE, self.services.settings)  # fmt: skip
        return Loaded(rules, problem)

    def _short(self, problem: str) -> str:
        """The problem for a text: the file's name instead of its path, the rule first."""
        name = os.path.basename(self.path) or "rules"
        if problem.startswith("rules: "):
            return f"{name}: {problem.removeprefix('rules: ')}"
        return problem.removeprefix("OPERATOR_CONFIG: ").replace(self.path, name)

    def _last_good(self) -> list[Rule] | None:
        """The rules in use, else the last section that loaded, from the store; None when unknown."""
        with self.services.engine.connect() as conn:
            row = conn.execute(select(rule_files).where(rule_files.c.id == ROW)).first()
        if row is None or row.good_section is None:
            return None
        try:
            return load_rules(self.services, json.loads(row.good_section))
        except (ConfigError, ValueError) as exc:  # e.g. a monitor no longer configured
            logger.error("the last good rules no longer load either: %s", exc)
            return None


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def _ensure_row(conn: Connection) -> None:
    if conn.execute(select(rule_files.c.id).where(rule_files.c.id == ROW)).first() is None:
        try:
            with conn.begin_nested():
                conn.execute(rule_files.insert().values(id=ROW))
        except IntegrityError:
            pass  # another worker made it


def _remember(conn: Connection, section: Any, digest: str) -> None:
    _ensure_row(conn)
    conn.execute(
        update(rule_files)
        .where(rule_files.c.id == ROW)
        .values(
            good_section=json.dumps(section, default=str),
            good_digest=digest,
            loaded_at=db.now(),
            bad_digest=None,
            bad_error=None,
        )  # fmt: skip
    )


def _first_notice(conn: Connection, digest: str, problem: str) -> bool:
    """Record `digest` as the bad file told about; False when it already was (by any worker)."""
    _ensure_row(conn)
    t = rule_files.c
    claimed = conn.execute(
        update(rule_files)
        .where(t.id == ROW, or_(t.bad_digest.is_(None), t.bad_digest != digest))
        .values(bad_digest=digest, bad_error=problem[:1000], noticed_at=db.now())
    )
    return bool(claimed.rowcount)


class RulesCheck(BaseMonitor):
    """`flask check`'s rules line: the file read and validated now, as the worker would, changing nothing."""

    name = "rules"

    def __init__(self, services: Services):
        super().__init__(timeout=10.0)
        self.services = services

    def _check(self) -> str:
        path = self.services.settings.operator_config
        try:
            rules = load_rules(self.services, (read_rules(path) if path else None) or [])
        except ConfigError as exc:
            raise MonitorError(str(exc), permanent=True) from None
        return f"ok {len(rules)} rule(s) in {path}" if path else "ok no rules (no OPERATOR_CONFIG file)"
