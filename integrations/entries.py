"""The file's `integrations:` list as frozen entries; a mistake is one ConfigError naming the entry and key.

The secrets themselves are read by config (Settings.integrations, from each entry's `key_env`):
this module never reads the environment.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from limits import parse_many

from config import ConfigError, Settings, keyed
from core.timeutil import parse_duration
from incidents.sources import generic
from oncall import teams


class Kind(StrEnum):
    """What a sender speaks: each kind is a door with its vendor's own request and answer shapes."""

    ALERTMANAGER = "alertmanager"
    DATADOG = "datadog"
    GRAFANA = "grafana"
    PAGERDUTY = "pagerduty"
    OPSGENIE = "opsgenie"
    GENERIC = "generic"
    EMAIL = "email"


# The kinds with a door today; the others are refused at start rather than silently ignored.
SUPPORTED = (Kind.ALERTMANAGER, Kind.DATADOG, Kind.GRAFANA, Kind.PAGERDUTY, Kind.OPSGENIE, Kind.GENERIC)
KEYS = ("name", "kind", "key_env", "team", "limit", "expect_every", "fields", "resolve_when")
GENERIC_KEYS = ("fields", "resolve_when")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$")
PAGERDUTY_KEY_LENGTH = 32


@dataclass(frozen=True)
class Integration:
    """One sender: its door's kind, its secret (never shown), and where its alerts go."""

    name: str
    kind: Kind
    key_env: str
    secret: str = field(repr=False)
    team: str = ""
    limit: str = ""
    # Silence longer than this pages "INTEGRATION SILENT <name>" (a heartbeat, config.integration_heartbeats).
    expect_every: float = 0.0
    # A generic webhook's fields and resolving values (`fields:`, `resolve_when:`); GoAlert's by default.
    spec: generic.Spec = field(default_factory=generic.Spec)


def parse_integrations(settings: Settings) -> dict[str, Integration]:
    """Every entry of `integrations:`, by name; ConfigError names the entry and the key."""
    section = settings.file.get("integrations")
    if section is None:
        return {}
    if not isinstance(section, list):
        raise ConfigError("integrations: must be a list (each entry starting with '- name: ...')")
    known_teams = teams.of(settings)
    found: dict[str, Integration] = {}
    for index, item in enumerate(section, start=1):
        label = (
            f"integration {item['name']!r}" if isinstance(item, Mapping) and "name" in item else f"#{index}"
        )
        try:
            entry = _entry(item, settings.integrations, known_teams)
            if entry.name in found:
                raise ConfigError("the name is used by another integration")
            if any(other.secret == entry.secret for other in found.values()):
                # PagerDuty and Opsgenie senders are told apart by their key alone.
                raise ConfigError("'key_env' holds the same secret as another integration's")
        except ConfigError as exc:
            raise ConfigError(f"integrations: {label}: {exc}") from None
        found[entry.name] = entry
    return found


def _entry(item: Any, secrets: Mapping[str, str], known_teams: Mapping[str, Any]) -> Integration:
    item = keyed(item, KEYS, "name, kind, key_env")
    name = item.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError("'name' must be one word of 1-40 letters, digits, '_' or '-'")
    kind = item.get("kind")
    if kind not in tuple(Kind):
        raise ConfigError(f"'kind' must be one of {', '.join(Kind)}, not {kind!r}")
    if kind not in SUPPORTED:
        raise ConfigError(f"'kind: {kind}' is not yet supported; supported now: {', '.join(SUPPORTED)}")
    key_env = item.get("key_env")
    if not isinstance(key_env, str) or not key_env:
        raise ConfigError("'key_env' is required: the environment variable that holds its secret")
    secret = secrets.get(name, "")
    if not secret:  # config.integration_secrets refuses a variable that is not set
        raise ConfigError(f"the variable {key_env} (its key_env) is not set")
    if kind == Kind.PAGERDUTY and len(secret) != PAGERDUTY_KEY_LENGTH:
        raise ConfigError(
            f"{key_env} must hold {PAGERDUTY_KEY_LENGTH} characters (a PagerDuty routing key), "
            f'not {len(secret)}: python3 -c "import secrets; print(secrets.token_hex(16))"'
        )
    team = item.get("team") or ""
    if not isinstance(team, str):
        raise ConfigError("'team' must be the name of a team in teams:")
    if team and team not in known_teams:
        raise ConfigError(f"'team: {team}' is not a team of the teams: section")
    limit = item.get("limit") or ""
    try:
        if limit and not (isinstance(limit, str) and parse_many(limit)):
            raise ValueError
    except ValueError:
        raise ConfigError(f"'limit' must read like '600 per 1 minute', not {limit!r}") from None
    expect_every = _duration(item["expect_every"]) if item.get("expect_every") not in (None, "") else 0.0
    return Integration(name, Kind(kind), key_env, secret, team, limit, expect_every, _spec(item, kind))


def _spec(item: Mapping[str, Any], kind: str) -> generic.Spec:
    given = [key for key in GENERIC_KEYS if key in item]
    if given and kind != Kind.GENERIC:
        raise ConfigError(f"'{given[0]}' is only for kind: generic")
    try:
        return generic.spec_of(item.get("fields"), item.get("resolve_when"))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _duration(value: Any) -> float:
    try:
        seconds = parse_duration(str(value))
    except ValueError:
        seconds = 0.0
    if seconds <= 0:
        raise ConfigError(f"'expect_every' must be a duration like 10m or 26h, not {value!r}")
    return seconds
