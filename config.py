"""Settings read once from the environment, and the optional YAML file, into a frozen object.

The entry point loads `.env` (python-dotenv) and calls `Settings.from_env(os.environ)`; nothing
else reads the environment or the file. A bad value raises `ConfigError` naming the variable.
The YAML file (`OPERATOR_CONFIG`, else ./operator.yml when present) is parsed here once and kept
as `Settings.file`; each feature validates its own section and raises ConfigError naming it.
"""

from __future__ import annotations

import ipaddress
import os
import re
import sys
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from types import MappingProxyType
from typing import Any, NoReturn
from urllib.parse import urlparse
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from limits import parse_many
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from core.timeutil import parse_duration

ROLES = ("viewer", "responder", "admin")
DEFAULT_ROLE = "responder"
# Roles that are paged; viewers only ask.
PAGE_ROLES = ("responder", "admin")
# ASCII digits to the very end: `\d` takes any script's digits and `$` a trailing newline.
E164 = re.compile(r"\+[1-9][0-9]{6,14}\Z")


class ConfigError(ValueError):
    """A configuration variable has a value Operator cannot use; always one line, so a value quoted
    in it (a key with a newline in it) cannot add lines to the log or to the admins' text."""

    def __init__(self, message: object = "") -> None:
        text = str(message)
        if not text.isprintable():
            text = "".join(" " if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") else c for c in text)
        super().__init__(text)


# Prometheus's conventional always-firing alert: never paged, even when no heartbeat claims it.
WATCHDOG_ALERT = "Watchdog"


@dataclass(frozen=True)
class Heartbeat:
    """One `heartbeats:` entry: something that must ping Operator at least every `timeout`."""

    name: str
    timeout: float
    # Empty: the pager numbers (ALERT_RECIPIENTS, else every responder and admin).
    recipients: tuple[str, ...] = ()
    # An Alertmanager alertname whose firing notifications count as pings of this heartbeat.
    watchdog: str = ""
    # The integration whose `expect_every` this is (named "integration:<name>"): armed at start-up,
    # pinged by the integration's accepted events, and paged as "INTEGRATION SILENT <name>".
    integration: str = ""


def stop(exc: ConfigError) -> NoReturn:
    """How every entry point ends on a bad setting: one line on stderr, exit status 2, no traceback.

    2 is the conventional "usage" status: a supervisor (systemd, Docker) that restarts on failure
    can be told not to retry it (RestartPreventExitStatus=2), since the same file fails again.
    """
    # One write with its newline: print() writes the line and "\n" apart, and several gunicorn
    # workers stopping at once (or their log lines) would interleave between the two.
    sys.stderr.write(f"Operator config error: {exc}\n")
    sys.stderr.flush()
    raise SystemExit(2)


@dataclass(frozen=True)
class Settings:
    twilio_auth_token: str
    twilio_account_sid: str = ""
    # Secret of a Twilio webhook SharedKey, for requests signed per X-Twilio-Webhooks-Signature-Settings.
    twilio_webhook_shared_key: str = ""
    twilio_from_number: str = ""
    # The base URL Twilio calls; every signature is checked against it (none pass without it).
    public_url: str = ""
    # Reverse proxies in front whose X-Forwarded-For is believed (nothing else they send is).
    proxy_hops: int = 0
    # The addresses (or networks) of those proxies. Set, a forwarded address is believed only from
    # them; empty, from anyone, so the login limit also counts failures per connecting address.
    proxy_addresses: tuple[str, ...] = ()
    # /metrics is served to this host, or to a scraper sending `Authorization: Bearer <token>`.
    metrics_token: str = ""
    # How long /metrics reuses its readings of the store; 0 reads it on every scrape.
    metrics_cache_ttl: float = 15.0
    # phone number (E.164) -> role
    authorized: Mapping[str, str] = field(default_factory=dict)
    database_url: str = "sqlite:///var/operator.db"
    # Off: the schema is only changed by `flask --app app db upgrade`; start refuses an old one.
    migrate_on_start: bool = True
    redis_url: str = ""
    rate_limit: str = "30 per 5 minutes"
    log_dir: str = "logs"
    log_level: str = "INFO"
    sms_emoji: bool = False
    sms_max_segments: int = 1
    # The IANA zone every time in a text and on the dashboard is written in (a team's own zone for its texts).
    timezone: str = "UTC"
    # The YAML file in use ("" for none) and its sections: queries, nrql, api, rules, database, heartbeats, teams.
    operator_config: str = ""
    file: Mapping[str, Any] = field(default_factory=dict)
    # monitors
    prometheus_url: str = ""
    monitor_db_url: str = ""
    newrelic_api_key: str = ""
    newrelic_account_id: str = ""
    newrelic_region: str = "us"
    newrelic_api_url: str = ""
    custom_api_url: str = ""
    custom_api_token: str = ""
    loki_url: str = ""
    loki_selector: str = '{job=~".+"}'
    log_files: str = ""
    monitor_timeout: float = 4.0
    reply_deadline: float = 10.0
    cache_ttl: float = 15.0
    # outbound SMS and alerting
    sms_backend: str = "console"
    twilio_api_url: str = ""
    sms_rate: float = 1.0
    sms_max_age: float = 3600.0
    alert_recipients: tuple[str, ...] = ()
    alert_interval: float = 60.0
    # How often open webhook alerts are reminded; 0 turns these reminders off.
    alert_repeat: float = 14400.0
    alert_limits: str = "1 per minute; 5 per 15 minutes; 12 per hour"
    recovery_delay: float = 120.0
    # alert webhooks
    alertmanager_url: str = ""
    alertmanager_token: str = ""
    alertmanager_user: str = ""
    alertmanager_password: str = ""
    datadog_token: str = ""
    escalate_after: float = 0.0
    escalation_numbers: tuple[str, ...] = ()
    # How the built-in escalation reaches ESCALATION_NUMBERS: a text, or a voice call.
    escalation_via: str = "sms"
    # voice calls: calls started per second (shared by all workers) and seconds a call rings
    call_rate: float = 1.0
    call_timeout: float = 30.0
    # the pipeline watching itself: /healthz says 503 once no worker has beaten for this long
    worker_silent_after: float = 120.0
    # dead man's switch: /heartbeat/<name> needs this token; the heartbeats come from the file
    heartbeat_token: str = ""
    heartbeats: tuple[Heartbeat, ...] = ()
    # The secrets of the file's `integrations:` (name -> the value of its key_env); the integrations
    # package reads the rest of each entry.
    integrations: Mapping[str, str] = field(default_factory=dict, repr=False)
    # the dashboard (/dashboard): off until DASHBOARD_PASSWORD holds a password hash
    dashboard_user: str = "admin"
    dashboard_password: str = ""
    # admin sees full numbers and the phone panel; viewer sees masked numbers only
    dashboard_role: str = "admin"
    # signs the dashboard's session cookie and CSRF tokens; required when the dashboard is on
    secret_key: str = ""
    # how long a dashboard login lasts, counted from the login: using it never extends it
    dashboard_session_lifetime: float = 12 * 3600.0
    # what one SMS segment costs (Twilio's US price in USD), for the dashboard's monthly estimate
    sms_segment_price: float = 0.0083

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Build settings from an environment mapping; raise ConfigError on a bad value."""
        return cls(**_parse(env))

    @property
    def zone(self) -> ZoneInfo:
        """TIMEZONE as a zone (zoneinfo keeps one instance per name)."""
        return ZoneInfo(self.timezone)

    @property
    def first_authorized(self) -> str:
        return next(iter(self.authorized), "")

    @property
    def pager_numbers(self) -> list[str]:
        """ALERT_RECIPIENTS, else every authorized responder and admin (viewers only ask)."""
        if self.alert_recipients:
            return list(self.alert_recipients)
        return [number for number, role in self.authorized.items() if role in PAGE_ROLES]

    @property
    def watchdog_names(self) -> frozenset[str]:
        """Alertmanager alertnames that are pings, never alerts."""
        return frozenset({WATCHDOG_ALERT, *(h.watchdog for h in self.heartbeats if h.watchdog)})


def _parse(env: Mapping[str, str]) -> dict[str, Any]:
    defaults = {f.name: f.default for f in fields(Settings) if f.default is not MISSING}

    def get(name: str) -> str:
        # An empty line in .env (`ALERT_LIMITS=`) means "use the default", as .env.example reads.
        return env.get(name, "").strip()

    def value(key: str, parse: Callable[..., Any] = _text, *args: Any, **kwargs: Any) -> Any:
        """Settings.<key> from the variable KEY, parsed; the dataclass default when unset."""
        name = key.upper()
        raw = get(name)
        return parse(name, raw, *args, **kwargs) if raw else defaults[key]

    token = get("TWILIO_AUTH_TOKEN")
    if not token:
        raise ConfigError(
            "TWILIO_AUTH_TOKEN is required: Operator checks every request's Twilio signature "
            "(for local use, `make run` writes a generated one to .env)"
        )
    sid, from_number = get("TWILIO_ACCOUNT_SID"), get("TWILIO_FROM_NUMBER")
    backend = get("SMS_BACKEND") or ("twilio" if sid and from_number else "console")
    if backend not in ("twilio", "console"):
        raise ConfigError(f"SMS_BACKEND must be twilio or console, not {backend!r}")
    if backend == "twilio" and not (sid and from_number):
        raise ConfigError("SMS_BACKEND=twilio needs TWILIO_ACCOUNT_SID and TWILIO_FROM_NUMBER")
    if from_number:
        _phone("TWILIO_FROM_NUMBER", from_number)
    path = get("OPERATOR_CONFIG") or (DEFAULT_FILE if os.path.exists(DEFAULT_FILE) else "")
    file = load_file(path) if path else {}
    return dict(
        twilio_auth_token=token,
        twilio_account_sid=sid,
        twilio_webhook_shared_key=value("twilio_webhook_shared_key"),
        twilio_from_number=from_number,
        public_url=value("public_url", _url),
        proxy_hops=value("proxy_hops", _int, 0, 10),
        proxy_addresses=value("proxy_addresses", _networks),
        metrics_token=value("metrics_token"),
        metrics_cache_ttl=value("metrics_cache_ttl", _seconds, allow_zero=True),
        authorized=_authorized(get("AUTHORIZED_NUMBERS")),
        database_url=value("database_url", _database_url),
        migrate_on_start=value("migrate_on_start", _bool),
        redis_url=value("redis_url", _redis_url),
        rate_limit=value("rate_limit", _limits),
        log_dir=value("log_dir"),
        log_level=value("log_level", _choice, ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"), upper=True),
        sms_emoji=value("sms_emoji", _bool),
        sms_max_segments=value("sms_max_segments", _int, 1, 10),
        timezone=value("timezone", _zone),
        operator_config=path,
        file=MappingProxyType(file),
        prometheus_url=value("prometheus_url", _url),
        monitor_db_url=value("monitor_db_url", _database_url),
        newrelic_api_key=value("newrelic_api_key"),
        newrelic_account_id=value("newrelic_account_id"),
        newrelic_region=value("newrelic_region", _choice, ("us", "eu")),
        newrelic_api_url=value("newrelic_api_url", _url),
        custom_api_url=value("custom_api_url", _url),
        custom_api_token=value("custom_api_token"),
        loki_url=value("loki_url", _url),
        loki_selector=value("loki_selector"),
        log_files=value("log_files"),
        monitor_timeout=value("monitor_timeout", _seconds),
        reply_deadline=value("reply_deadline", _seconds),
        cache_ttl=value("cache_ttl", _seconds, allow_zero=True),
        sms_backend=backend,
        twilio_api_url=value("twilio_api_url", _url),
        sms_rate=value("sms_rate", _float),
        sms_max_age=value("sms_max_age", _seconds),
        alert_recipients=value("alert_recipients", _phones),
        alert_interval=value("alert_interval", _seconds),
        alert_repeat=value("alert_repeat", _seconds, allow_zero=True),
        alert_limits=value("alert_limits", _limits),
        recovery_delay=value("recovery_delay", _seconds, allow_zero=True),
        alertmanager_url=value("alertmanager_url", _url),
        alertmanager_token=value("alertmanager_token"),
        alertmanager_user=value("alertmanager_user"),
        alertmanager_password=value("alertmanager_password"),
        datadog_token=value("datadog_token"),
        escalate_after=value("escalate_after", _seconds, allow_zero=True),
        escalation_numbers=value("escalation_numbers", _phones),
        escalation_via=value("escalation_via", _choice, ("sms", "call")),
        call_rate=value("call_rate", _float),
        call_timeout=value("call_timeout", _seconds),
        worker_silent_after=value("worker_silent_after", _seconds),
        heartbeat_token=value("heartbeat_token"),
        heartbeats=parse_heartbeats(file.get("heartbeats"))
        + integration_heartbeats(file.get("integrations")),
        integrations=MappingProxyType(integration_secrets(file.get("integrations"), get)),
        **_dashboard(get, value),
    )


# The prefixes werkzeug.security.generate_password_hash writes (method:params$salt$hash).
_HASH_METHODS = ("scrypt:", "pbkdf2:")


def _dashboard(get: Callable[[str], str], value: Callable[..., Any]) -> dict[str, Any]:
    password, secret = get("DASHBOARD_PASSWORD"), get("SECRET_KEY")
    if password and not (password.startswith(_HASH_METHODS) and password.count("$") == 2):
        raise ConfigError(
            "DASHBOARD_PASSWORD must be a password hash, not the password: "
            "make one with `flask --app app dashboard hash-password`"
        )
    if password and len(secret) < 16:
        raise ConfigError(
            "SECRET_KEY is required (16 characters or more) when DASHBOARD_PASSWORD is set: "
            'python3 -c "import secrets; print(secrets.token_hex(32))"'
        )
    return dict(
        dashboard_user=value("dashboard_user"),
        dashboard_password=password,
        dashboard_role=value("dashboard_role", _choice, ("admin", "viewer")),
        secret_key=secret,
        dashboard_session_lifetime=value("dashboard_session_lifetime", _seconds),
        sms_segment_price=value("sms_segment_price", _price),
    )


def _price(name: str, value: str) -> float:
    try:
        price = float(value)
    except ValueError:
        price = -1.0
    if not 0 <= price < 100:
        raise ConfigError(f"{name} must be a price per segment such as 0.0083, not {value!r}")
    return price


def _text(name: str, value: str) -> str:
    return value


def _choice(name: str, value: str, choices: tuple[str, ...], upper: bool = False) -> str:
    value = value.upper() if upper else value.lower()
    if value not in choices:
        raise ConfigError(f"{name} must be {', '.join(choices[:-1])} or {choices[-1]}, not {value!r}")
    return value


DEFAULT_FILE = "operator.yml"
FILE_SECTIONS = (
    "queries",
    "nrql",
    "api",
    "rules",
    "database",
    "heartbeats",
    "phrases",
    "teams",
    "integrations",
)


def load_file(path: str) -> dict[str, Any]:
    """The parsed YAML file as a dict of sections.

    A `rules:` block that is not even YAML is left out instead of stopping start-up: the rules are
    the worker's, which reads them itself (read_rules) and reports a mistake without stopping.
    """
    text = _read(path)
    try:
        return _sections(path, text)
    except ConfigError:
        rest = _without_rules(text)
        if rest == text:
            raise
        try:
            return _sections(path, rest)
        except ConfigError:
            pass
        raise


def read_rules(path: str) -> Any:
    """The file's `rules:` section, read now: how the worker loads and reloads its rules."""
    return _sections(path, _read(path)).get("rules")


def _without_rules(text: str) -> str:
    """The text without its top-level `rules:` block (which ends at the next top-level key)."""
    kept, inside = [], False
    for line in text.splitlines(keepends=True):
        if re.match(r"rules\s*:", line):
            inside = True
        elif (
            inside and line.strip() and (not line.startswith((" ", "\t", "#", "-")) or line.startswith("---"))
        ):
            inside = False
        if not inside:
            kept.append(line)
    return "".join(kept)


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError(f"OPERATOR_CONFIG: cannot read {path}: {reason}") from None


def _sections(path: str, text: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"OPERATOR_CONFIG: {path} is not valid YAML: {_yaml_problem(exc)}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"OPERATOR_CONFIG: {path} must be a mapping of sections")
    unknown = sorted(str(k) for k in set(data) - set(FILE_SECTIONS))
    if unknown:
        raise ConfigError(
            f"OPERATOR_CONFIG: {path} has unknown section(s) {', '.join(unknown)}; "
            f"known: {', '.join(FILE_SECTIONS)}"
        )
    return data


HEARTBEAT_KEYS = ("name", "timeout", "recipients", "watchdog")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")


def parse_heartbeats(section: Any) -> tuple[Heartbeat, ...]:
    """The file's `heartbeats:` list; ConfigError names the heartbeat and the problem."""
    if section is None:
        return ()
    if not isinstance(section, list):
        raise ConfigError("heartbeats: must be a list (each entry starting with '- name: ...')")
    found: list[Heartbeat] = []
    for index, item in enumerate(section, start=1):
        label = f"heartbeat #{index}"
        if isinstance(item, Mapping) and isinstance(item.get("name"), str):
            label = f"heartbeat {item['name']!r}"
        try:
            heartbeat = _heartbeat(item)
        except ConfigError as exc:
            raise ConfigError(f"heartbeats: {label}: {exc}") from None
        if any(h.name == heartbeat.name for h in found):
            raise ConfigError(f"heartbeats: {label}: the name is used by another heartbeat")
        found.append(heartbeat)
    return tuple(found)


def keyed(item: Any, keys: tuple[str, ...], like: str) -> Mapping[str, Any]:
    """`item` as a mapping of no keys but `keys` (a config file's entry); ConfigError otherwise."""
    if not isinstance(item, Mapping):
        raise ConfigError(f"must be a mapping of keys like {like}")
    unknown = sorted(str(k) for k in item if k not in keys)
    if unknown:
        raise ConfigError(f"unknown key(s) {', '.join(unknown)}; known: {', '.join(keys)}")
    return item


def _heartbeat(item: Any) -> Heartbeat:
    item = keyed(item, HEARTBEAT_KEYS, "name, timeout, recipients")
    name = item.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError("'name' must be 1-64 letters, digits, '_', '.', ':' or '-'")
    if item.get("timeout") in (None, ""):
        raise ConfigError("'timeout' is required (how long without a ping before it pages, e.g. 10m)")
    try:
        timeout = parse_duration(str(item["timeout"]))
    except ValueError:
        timeout = 0.0
    if timeout <= 0:
        raise ConfigError(f"'timeout' must be a duration like 90s, 10m or 26h, not {item['timeout']!r}")
    recipients = item.get("recipients") or ()
    if isinstance(recipients, str):
        recipients = [p.strip() for p in recipients.split(",") if p.strip()]
    if not isinstance(recipients, list | tuple):
        raise ConfigError("'recipients' must be a list of E.164 numbers")
    for phone in recipients:
        if not isinstance(phone, str) or not E164.match(phone):
            raise ConfigError(f"recipient {phone!r} is not an E.164 number like +15550100 (quote it in YAML)")
    watchdog = item.get("watchdog") or ""
    if not isinstance(watchdog, str) or len(watchdog) > 200:
        raise ConfigError("'watchdog' must be the alertname of an always-firing alert, like Watchdog")
    return Heartbeat(name=name, timeout=timeout, recipients=tuple(recipients), watchdog=watchdog.strip())


_VARIABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


def integration_secrets(section: Any, get: Callable[[str], str]) -> dict[str, str]:
    """Each `integrations:` entry's secret, read from the variable its `key_env` names.

    Only the secrets are read here (the environment is read nowhere else); the integrations
    package checks the rest of each entry when the app starts.
    """
    if not isinstance(section, list):
        return {}
    found: dict[str, str] = {}
    for index, item in enumerate(section, start=1):
        if not isinstance(item, Mapping) or item.get("key_env") in (None, ""):
            continue
        label = (
            f"integration {item['name']!r}" if isinstance(item.get("name"), str) else f"integration #{index}"
        )
        variable = item["key_env"]
        if not isinstance(variable, str) or not _VARIABLE.match(variable):
            raise ConfigError(f"integrations: {label}: 'key_env' must name an environment variable")
        secret = get(variable)
        if not secret:
            raise ConfigError(f"integrations: {label}: the variable {variable} (its key_env) is not set")
        if isinstance(item.get("name"), str):
            found[item["name"]] = secret
    return found


def integration_heartbeats(section: Any) -> tuple[Heartbeat, ...]:
    """A heartbeat for each `integrations:` entry with an `expect_every` (the integrations package checks the rest)."""
    found = []
    for item in section if isinstance(section, list) else ():
        if (
            not isinstance(item, Mapping)
            or not isinstance(item.get("name"), str)
            or not item.get("expect_every")
        ):
            continue
        try:
            timeout = parse_duration(str(item["expect_every"]))
        except ValueError:
            continue  # integrations.entries stops start-up naming it
        if timeout > 0:
            name = item["name"]
            found.append(Heartbeat(name=f"integration:{name}"[:64], timeout=timeout, integration=name))
    return tuple(found)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """PyYAML's several-line message in one line: 'while scanning ... (line 5): found ... (line 9)'."""
    if not isinstance(exc, yaml.MarkedYAMLError):
        return str(exc).replace("\n", " ")
    parts = [
        f"{what} (line {mark.line + 1})" if mark else str(what)
        for what, mark in ((exc.context, exc.context_mark), (exc.problem, exc.problem_mark))
        if what
    ]
    return ": ".join(parts) or "unreadable"


def _int(name: str, value: str, low: int, high: int) -> int:
    try:
        number = int(value)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, not {value!r}") from None
    if not low <= number <= high:
        raise ConfigError(f"{name} must be between {low} and {high}, not {number}")
    return number


def _float(name: str, value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(f"{name} must be a number, not {value!r}") from None
    if number <= 0:
        raise ConfigError(f"{name} must be greater than 0, not {value!r}")
    return number


def _seconds(name: str, value: str, allow_zero: bool = False) -> float:
    try:
        seconds = parse_duration(value)
    except ValueError:
        raise ConfigError(f"{name} must be a duration like 30s, 5m or 2h, not {value!r}") from None
    if seconds < 0 or (seconds == 0 and not allow_zero):
        raise ConfigError(f"{name} must be greater than 0, not {value!r}")
    return seconds


def _zone(name: str, value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a folder of zones, like "Europe"
        raise ConfigError(
            f"{name} must be an IANA time zone such as Europe/Berlin or UTC, not {value[:40]!r}"
        ) from None
    return value


def _networks(name: str, value: str) -> tuple[str, ...]:
    """Comma-separated IP addresses or networks (10.0.0.5, 10.0.0.0/8, fd00::/8), normalised."""
    found = []
    for part in (p.strip() for p in value.split(",")):
        if not part:
            continue
        try:
            found.append(str(ipaddress.ip_network(part, strict=False)))
        except ValueError:
            raise ConfigError(
                f"{name} must be IP addresses or networks like 10.0.0.0/8, not {part!r}"
            ) from None
    return tuple(found)


def _bool(name: str, value: str) -> bool:
    lowered = value.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("", "0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, not {value!r}")


def _url(name: str, value: str) -> str:
    if not value:
        return ""
    parsed = urlparse(value)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ConfigError(f"{name} must be an http(s) URL like https://host, not {value!r}")
    if name == "PUBLIC_URL" and (parsed.query or parsed.fragment or parsed.params):
        # Twilio signs the URL it calls; a query here would be signed twice over.
        raise ConfigError(f"PUBLIC_URL must be a base URL without ?query or #fragment, not {value!r}")
    return value.rstrip("/")


def _database_url(name: str, value: str) -> str:
    """A SQLAlchemy URL; libpq's postgres:// and postgresql:// get the psycopg (3) driver we ship."""
    try:
        url = make_url(value)
    except ArgumentError:
        # The value itself is not echoed: it may carry a password.
        raise ConfigError(
            f"{name} must be a database URL like postgresql://user:password@host/db or sqlite:///path.db"
        ) from None
    url = _with_our_driver(url)
    try:
        url.get_dialect().import_dbapi()
    except NoSuchModuleError:
        raise ConfigError(
            f"{name}: unknown database kind {url.drivername!r}; use postgresql://, mysql:// or sqlite:///"
        ) from None
    except ImportError:
        raise ConfigError(
            f"{name}: the driver of {url.drivername!r} is not installed; drop the +driver part"
        ) from None
    return url.render_as_string(hide_password=False)


def _redis_url(name: str, value: str) -> str:
    scheme = value.partition("://")[0].lower()
    if (
        scheme not in ("redis", "rediss", "redis+unix", "redis+sentinel", "redis+cluster")
        or "://" not in value
    ):
        # Not echoed: a Redis URL may carry a password.
        raise ConfigError(f"{name} must be a Redis URL like redis://127.0.0.1:6379/0 or rediss://...")
    return value


def _with_our_driver(url: URL) -> URL:
    backend, _, driver = url.drivername.partition("+")
    if backend in ("postgres", "postgresql"):
        # SQLAlchemy knows no "postgres" and defaults "postgresql" to psycopg2, which is not installed.
        return url.set(drivername=f"postgresql+{driver or 'psycopg'}")
    if backend in ("mysql", "mariadb") and not driver:
        return url.set(drivername=f"{backend}+pymysql")
    return url


def _limits(name: str, value: str) -> str:
    try:
        if not parse_many(value):
            raise ValueError
    except ValueError:
        raise ConfigError(
            f"{name} must read like '10 per 5 minutes' (limits notation), not {value!r}"
        ) from None
    return value


def _phone(name: str, value: str) -> str:
    if not E164.match(value):
        raise ConfigError(f"{name}: {value!r} is not an E.164 phone number like +15550100")
    return value


def _phones(name: str, value: str) -> tuple[str, ...]:
    return tuple(_phone(name, part.strip()) for part in value.split(",") if part.strip())


def _authorized(value: str) -> dict[str, str]:
    """'+15550100:admin,+15550101:viewer,+15550102' -> {number: role}."""
    result: dict[str, str] = {}
    for part in (p.strip() for p in value.split(",")):
        if not part:
            continue
        number, _, role = part.partition(":")
        number, role = number.strip(), (role.strip().lower() or DEFAULT_ROLE)
        _phone("AUTHORIZED_NUMBERS", number)
        if role not in ROLES:
            raise ConfigError(
                f"AUTHORIZED_NUMBERS: role {role!r} for {number[:5]}*** must be one of {', '.join(ROLES)}"
            )
        result[number] = role
    return result
