"""Settings read once from the environment, and the optional YAML file, into a frozen object.

The entry point loads `.env` (python-dotenv) and calls `Settings.from_env(os.environ)`; nothing
else reads the environment or the file. A bad value raises `ConfigError` naming the variable.
The YAML file (`OPERATOR_CONFIG`, else ./operator.yml when present) is parsed here once and kept
as `Settings.file`; each feature validates its own section and raises ConfigError naming it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any
from urllib.parse import urlparse

import yaml
from limits import parse_many

from core.timeutil import parse_duration

ROLES = ("viewer", "responder", "admin")
DEFAULT_ROLE = "responder"
# Roles that are paged; viewers only ask.
PAGE_ROLES = ("responder", "admin")
E164 = re.compile(r"^\+[1-9]\d{6,14}$")


class ConfigError(ValueError):
    """A configuration variable has a value Operator cannot use."""


@dataclass(frozen=True)
class Settings:
    twilio_auth_token: str
    twilio_account_sid: str = ""
    # Secret of a Twilio webhook SharedKey, for requests signed per X-Twilio-Webhooks-Signature-Settings.
    twilio_webhook_shared_key: str = ""
    twilio_from_number: str = ""
    public_url: str = ""
    proxy_hops: int = 0
    # phone number (E.164) -> role
    authorized: Mapping[str, str] = field(default_factory=dict)
    database_url: str = "sqlite:///var/operator.db"
    # Off: the schema is only changed by `flask --app app db upgrade`; start refuses an old one.
    migrate_on_start: bool = True
    redis_url: str = ""
    rate_limit: str = "10 per 5 minutes"
    log_dir: str = "logs"
    log_level: str = "INFO"
    sms_emoji: bool = False
    sms_max_segments: int = 1
    # The YAML file in use ("" for none) and its sections: queries, nrql, api, rules, database.
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

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Build settings from an environment mapping; raise ConfigError on a bad value."""
        return cls(**_parse(env))

    @property
    def first_authorized(self) -> str:
        return next(iter(self.authorized), "")

    @property
    def pager_numbers(self) -> list[str]:
        """ALERT_RECIPIENTS, else every authorized responder and admin (viewers only ask)."""
        if self.alert_recipients:
            return list(self.alert_recipients)
        return [number for number, role in self.authorized.items() if role in PAGE_ROLES]


def _parse(env: Mapping[str, str]) -> dict:
    def get(name: str, default: str = "") -> str:
        # An empty line in .env (`ALERT_LIMITS=`) means "use the default", as .env.example reads.
        return env.get(name, "").strip() or default

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
    limit = get("RATE_LIMIT", "10 per 5 minutes")
    _limits("RATE_LIMIT", limit)
    alert_limits = get("ALERT_LIMITS", "1 per minute; 5 per 15 minutes; 12 per hour")
    _limits("ALERT_LIMITS", alert_limits)
    region = get("NEWRELIC_REGION", "us").lower()
    if region not in ("us", "eu"):
        raise ConfigError(f"NEWRELIC_REGION must be us or eu, not {region!r}")
    path = get("OPERATOR_CONFIG") or (DEFAULT_FILE if os.path.exists(DEFAULT_FILE) else "")
    log_level = get("LOG_LEVEL", "INFO").upper()
    if log_level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise ConfigError(f"LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, not {log_level!r}")
    return dict(
        twilio_auth_token=token,
        twilio_account_sid=sid,
        twilio_webhook_shared_key=get("TWILIO_WEBHOOK_SHARED_KEY"),
        twilio_from_number=from_number,
        public_url=_url("PUBLIC_URL", get("PUBLIC_URL")),
        proxy_hops=_int("PROXY_HOPS", get("PROXY_HOPS", "0"), 0, 10),
        authorized=_authorized(get("AUTHORIZED_NUMBERS")),
        database_url=get("DATABASE_URL") or "sqlite:///var/operator.db",
        migrate_on_start=_bool("MIGRATE_ON_START", get("MIGRATE_ON_START", "true")),
        redis_url=get("REDIS_URL"),
        rate_limit=limit,
        log_dir=get("LOG_DIR") or "logs",
        log_level=log_level,
        sms_emoji=_bool("SMS_EMOJI", get("SMS_EMOJI", "false")),
        sms_max_segments=_int("SMS_MAX_SEGMENTS", get("SMS_MAX_SEGMENTS", "1"), 1, 10),
        operator_config=path,
        file=MappingProxyType(load_file(path)) if path else MappingProxyType({}),
        prometheus_url=_url("PROMETHEUS_URL", get("PROMETHEUS_URL")),
        monitor_db_url=get("MONITOR_DB_URL"),
        newrelic_api_key=get("NEWRELIC_API_KEY"),
        newrelic_account_id=get("NEWRELIC_ACCOUNT_ID"),
        newrelic_region=region,
        newrelic_api_url=_url("NEWRELIC_API_URL", get("NEWRELIC_API_URL")),
        custom_api_url=_url("CUSTOM_API_URL", get("CUSTOM_API_URL")),
        custom_api_token=get("CUSTOM_API_TOKEN"),
        loki_url=_url("LOKI_URL", get("LOKI_URL")),
        loki_selector=get("LOKI_SELECTOR") or '{job=~".+"}',
        log_files=get("LOG_FILES"),
        monitor_timeout=_seconds("MONITOR_TIMEOUT", get("MONITOR_TIMEOUT", "4")),
        reply_deadline=_seconds("REPLY_DEADLINE", get("REPLY_DEADLINE", "10")),
        cache_ttl=_seconds("CACHE_TTL", get("CACHE_TTL", "15"), allow_zero=True),
        sms_backend=backend,
        twilio_api_url=_url("TWILIO_API_URL", get("TWILIO_API_URL")),
        sms_rate=_float("SMS_RATE", get("SMS_RATE", "1")),
        sms_max_age=_seconds("SMS_MAX_AGE", get("SMS_MAX_AGE", "1h")),
        alert_recipients=_phones("ALERT_RECIPIENTS", get("ALERT_RECIPIENTS")),
        alert_interval=_seconds("ALERT_INTERVAL", get("ALERT_INTERVAL", "60")),
        alert_repeat=_seconds("ALERT_REPEAT", get("ALERT_REPEAT", "4h"), allow_zero=True),
        alert_limits=alert_limits,
        recovery_delay=_seconds("RECOVERY_DELAY", get("RECOVERY_DELAY", "2m"), allow_zero=True),
        alertmanager_url=_url("ALERTMANAGER_URL", get("ALERTMANAGER_URL")),
        alertmanager_token=get("ALERTMANAGER_TOKEN"),
        alertmanager_user=get("ALERTMANAGER_USER"),
        alertmanager_password=get("ALERTMANAGER_PASSWORD"),
        datadog_token=get("DATADOG_TOKEN"),
        escalate_after=_seconds("ESCALATE_AFTER", get("ESCALATE_AFTER", "0"), allow_zero=True),
        escalation_numbers=_phones("ESCALATION_NUMBERS", get("ESCALATION_NUMBERS")),
    )


DEFAULT_FILE = "operator.yml"
FILE_SECTIONS = ("queries", "nrql", "api", "rules", "database")


def load_file(path: str) -> dict[str, Any]:
    """The parsed YAML file as a dict of sections."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = yaml.safe_load(handle) or {}
    except OSError as exc:
        raise ConfigError(f"OPERATOR_CONFIG: cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"OPERATOR_CONFIG: {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"OPERATOR_CONFIG: {path} must be a mapping of sections")
    unknown = sorted(str(k) for k in set(data) - set(FILE_SECTIONS))
    if unknown:
        raise ConfigError(
            f"OPERATOR_CONFIG: {path} has unknown section(s) {', '.join(unknown)}; "
            f"known: {', '.join(FILE_SECTIONS)}"
        )
    return data


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
    return value.rstrip("/")


def _limits(name: str, value: str) -> None:
    try:
        if not parse_many(value):
            raise ValueError
    except ValueError:
        raise ConfigError(
            f"{name} must read like '10 per 5 minutes' (limits notation), not {value!r}"
        ) from None


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
