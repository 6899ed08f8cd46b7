"""metrics, db, apps, nr, api and logs: live answers from the configured backends."""

from __future__ import annotations

import difflib
import re
from typing import TypeVar

from command_processor import CommandError, Context, command
from conversation import composer, resolver
from conversation.vocabulary import FILLER, stems, tokens
from monitors import BaseMonitor, Result, cached_query, query_all
from monitors.cache import age_suffix
from monitors.custom_api import CustomApiMonitor
from monitors.database import DatabaseMonitor
from monitors.logs import DEFAULT_RANGE, MAX_RANGE
from monitors.newrelic import LOOKS_LIKE_NRQL, NewRelicMonitor
from monitors.newrelic import RAW as RAW_NRQL
from monitors.prometheus import ALIASES, BUILTIN, PrometheusMonitor, no_data_hint
from monitors.prometheus import RAW as RAW_PROMQL
from security import allows
from services import Services

SYS_WORDS = ("cpu", "memory", "mem", "ram", "disk", "load")
# What people call a metric in a sentence -> the name Operator knows it by ("any 500s?").
SYNONYMS = {
    "500s": "errors", "5xxs": "errors", "5xx": "errors", "exceptions": "errors", "failures": "errors",
    "exception": "errors", "failure": "errors",
    "slow": "latency", "slowness": "latency", "response": "latency", "p99": "latency",
    "processor": "cpu", "heap": "memory", "space": "disk", "storage": "disk", "filesystem": "disk",
}  # fmt: skip
RAW_WORDS = ("promql", "raw", "expr", "query")
# Characters that only appear in an expression, never in a metric's name typed in a sentence.
_OPERATORS = re.compile(r"[(){}\[\]=<>~*/+]")
_PROMQL = re.compile(r"[(){}\[\]=<>~*/+_:]")

M = TypeVar("M", bound=BaseMonitor)


def _find(services: Services, key: str, kind: type[M]) -> M | None:
    """The monitor built under `key`, as the class monitors.MONITORS builds there; None if not configured."""
    monitor = services.monitors.get(key)
    if monitor is None or isinstance(monitor, kind):
        return monitor
    raise TypeError(f"monitor {key!r} is a {type(monitor).__name__}, not a {kind.__name__}")


def _monitor(ctx: Context, key: str, kind: type[M], variable: str) -> M:
    monitor = _find(ctx.services, key, kind)
    if monitor is None:
        raise CommandError(f"Not configured: set {variable} to use this.")
    return monitor


def _words(ctx: Context) -> list[str]:
    """The arguments that mean something ("api please" has none)."""
    return [w for w in ctx.args if w not in FILLER]


def _reply(result: Result) -> str:
    if result.ok:
        return result.text + age_suffix(result)
    return f"{result.monitor} ERROR {result.error}"


def _suggest(word: str, names: list[str]) -> str:
    close = difflib.get_close_matches(word, names, n=1, cutoff=0.6)
    return f"Did you mean '{close[0]}'? " if close else ""


def _metric_words(services: Services) -> list[str]:
    prom = _find(services, "prometheus", PrometheusMonitor)
    # The built-in names count without Prometheus too: the reply then says what this host has.
    return [*(prom.queries if prom else BUILTIN), *ALIASES, *SYS_WORDS, *SYNONYMS]


def metric_name(services: Services, words: list[str]) -> str | None:
    """The query a sentence's words name ("disks" -> disk, "500s" -> errors), or None."""
    prom = _find(services, "prometheus", PrometheusMonitor)
    for word in words:
        for form in stems(word):
            name = SYNONYMS.get(form, form)
            key = prom.resolve(name) if prom else ALIASES.get(name, name)
            if key and (key in BUILTIN or key in SYS_WORDS or prom):
                return key
    return None


def _metric_canonical(ctx: Context) -> str:
    if ctx.rest and _PROMQL.search(ctx.rest) and _OPERATORS.search(ctx.rest):
        return ctx.rest.strip()
    return metric_name(ctx.services, [*_words(ctx), *ctx.args]) or ""


@command(
    "metrics", aliases=("metric", "graph", "promql"), keywords=_metric_words, canonical=_metric_canonical
)
def metrics(ctx: Context) -> str:
    """metrics [name]: a named Prometheus query (cpu, memory, errors...); no name lists them."""
    prom = _find(ctx.services, "prometheus", PrometheusMonitor)
    args = _words(ctx)
    if not _OPERATORS.search(ctx.rest) and metric_name(ctx.services, [*args, *ctx.args]) == "errors":
        sources = _log_sources(ctx)
        # "errors?" from someone who did not say "metrics" or "rate": the log files may hold them.
        if sources and not ctx.leading and not resolver.asks_rate(tokens(ctx.text)):
            return _errors_everywhere(ctx, prom, sources)
    if prom is None:
        return _system_metric(ctx)
    names = list(prom.queries)
    if args and args[0] in RAW_WORDS:
        parts = ctx.rest.split(None, 1)
        return _raw_promql(ctx, prom, parts[1] if len(parts) > 1 else "")
    if not _OPERATORS.search(ctx.rest):
        # Meaningful words first: in "is memory up?" the metric is memory, not up.
        key = metric_name(ctx.services, [*args, *ctx.args])
        if key:
            return _named(ctx, prom, key)
    if ctx.rest and _PROMQL.search(ctx.rest):
        return _raw_promql(ctx, prom, ctx.rest)
    if not args:
        return "Metrics: " + ", ".join(names) + ". Text METRICS <name>."
    word = args[0][:20]
    return f"No metric '{word}'. {_suggest(word, names)}Known: {', '.join(names)}."


def _named(ctx: Context, prom: PrometheusMonitor, key: str) -> str:
    """A named query's answer; "no data" says which exporter is missing and adds this host's reading."""
    result = cached_query(prom, key)
    if not (result.ok and _empty(result)):
        return _reply(result)
    hint = composer.hint(no_data_hint(key, prom.queries[key]))
    system = ctx.services.monitors.get("system")
    own = system.query(key, []) if system is not None and key in SYS_WORDS else None
    here = f" This host: {own.text}." if own is not None and own.ok else ""
    return f"{key}: no data in Prometheus.{hint}{here}"


def _empty(result: Result) -> bool:
    """An answer with nothing in it: a query without series, a search without matches."""
    return result.text.endswith("no data") or " 0 matches " in result.text


def _errors_everywhere(ctx: Context, prom: PrometheusMonitor | None, sources: list[BaseMonitor]) -> str:
    """Errors from the metric and the logs at once; an empty answer gives way to one that is not."""
    terms, seconds = search_words(ctx.rest)
    calls: list[tuple[BaseMonitor, str, list[str]]] = [(prom, "errors", [])] if prom else []
    calls += [(m, "search", [str(seconds), *(terms or ["error"])]) for m in sources]
    results = query_all(calls, ctx.services.settings.reply_deadline)
    useful = [r for r in results if r.ok and not _empty(r)] or results
    return " | ".join(_reply(r) for r in useful)


def _raw_promql(ctx: Context, prom: PrometheusMonitor, expr: str) -> str:
    if not allows(ctx.role, "admin"):
        raise CommandError(f"Raw PromQL needs the admin role. Named metrics: {', '.join(prom.queries)}.")
    if not expr.strip():
        raise CommandError("Usage: metrics <PromQL expression>")
    return _reply(cached_query(prom, RAW_PROMQL, [expr.strip()[:500]]))


def _system_metric(ctx: Context) -> str:
    system = ctx.services.monitors.get("system")
    wanted = metric_name(ctx.services, _words(ctx))
    wanted = wanted if wanted in SYS_WORDS else None
    if system is None or wanted is None:
        return "Metrics (this host; set PROMETHEUS_URL for more): cpu, memory, disk, load."
    return _reply(system.query(wanted, []))


@command(
    "db",
    aliases=("database", "postgres", "postgresql", "mysql", "mariadb", "sql", "pg", "databases", "dbs"),
    keywords=("connections", "replication", "replica", "lag", "queries", "locks", "deadlocks"),
)
def db(ctx: Context) -> str:
    """db: database up/down, version, connections, longest query, size, replication lag."""
    return _reply(cached_query(_monitor(ctx, "database", DatabaseMonitor, "MONITOR_DB_URL"), "summary"))


@command("apps", aliases=("app", "applications", "apm"), keywords=("apdex", "relic", "throughput"))
def apps(ctx: Context) -> str:
    """apps: New Relic applications, worst first (health, response time, error rate, apdex)."""
    return _reply(cached_query(_monitor(ctx, "newrelic", NewRelicMonitor, "NEWRELIC_API_KEY"), "apps"))


def _nrql_words(services: Services) -> list[str]:
    nr = _find(services, "newrelic", NewRelicMonitor)
    return list(nr.queries) if nr else []


def _first_word(ctx: Context) -> str:
    return next((w for w in _words(ctx) if w.isalnum()), "")[:30]


@command("nr", aliases=("newrelic", "nrql"), keywords=_nrql_words, canonical=_first_word)
def nr(ctx: Context) -> str:
    """nr <name>: a named New Relic NRQL query from the config file; no name lists them."""
    monitor = _monitor(ctx, "newrelic", NewRelicMonitor, "NEWRELIC_API_KEY")
    names = list(monitor.queries)
    if LOOKS_LIKE_NRQL.match(ctx.rest):
        if not allows(ctx.role, "admin"):
            raise CommandError(f"Raw NRQL needs the admin role. Named: {', '.join(names) or 'none'}.")
        return _reply(cached_query(monitor, RAW_NRQL, [ctx.rest.strip()[:500]]))
    args = _words(ctx)
    for word in ctx.args:
        if word in monitor.queries:
            return _reply(cached_query(monitor, word))
    if not names:
        return "No NRQL queries configured (nrql: in the config file). Text APPS for applications."
    if not args:
        return "NRQL queries: " + ", ".join(names) + ". Text NR <name>."
    word = args[0][:20]
    return f"No NRQL query '{word}'. {_suggest(word, names)}Known: {', '.join(names)}."


def _endpoint_words(services: Services) -> list[str]:
    api = _find(services, "api", CustomApiMonitor)
    return list(api.endpoints) if api else []


def _endpoint_canonical(ctx: Context) -> str:
    api = _find(ctx.services, "api", CustomApiMonitor)
    return next((w for w in ctx.args if api and w in api.endpoints), "")


@command("api", aliases=("endpoint", "endpoints"), keywords=_endpoint_words, canonical=_endpoint_canonical)
def api(ctx: Context) -> str:
    """api [endpoint]: your API's configured endpoint fields and latency."""
    monitor = _monitor(ctx, "api", CustomApiMonitor, "CUSTOM_API_URL")
    names = list(monitor.endpoints)
    args = [w for w in _words(ctx) if w not in ("status", "api", "endpoint", "endpoints")]
    chosen = next((w for w in ctx.args if w in monitor.endpoints), None)
    if args and chosen is None and names:
        word = args[0][:20]
        return f"No endpoint '{word}'. {_suggest(word, names)}Known: {', '.join(names)}."
    reply = _reply(cached_query(monitor, chosen or ""))
    others = [n for n in names if n != (chosen or names[0])] if names else []
    return reply + (f" (also: {', '.join(others)})" if others and not args else "")


def search_words(rest: str) -> tuple[list[str], float]:
    """(terms, seconds) of a log search typed as a sentence: filler, punctuation and time words dropped."""
    terms, seconds = resolver.log_query(rest)
    return terms, min(max(seconds or DEFAULT_RANGE, 60.0), MAX_RANGE)


def _log_canonical(ctx: Context) -> str:
    terms, seconds = resolver.log_query(ctx.rest)
    span = [resolver.duration_text(min(max(seconds, 60.0), MAX_RANGE))] if seconds else []
    # A phrase keeps its quotes, so the canonical form searches the same when texted back.
    return " ".join([*(f'"{t.lower()}"' if " " in t else t.lower() for t in terms), *span])


def _log_sources(ctx: Context) -> list[BaseMonitor]:
    return [m for key in ("loki", "logfiles") if (m := ctx.services.monitors.get(key))]


@command("logs", aliases=("log", "grep", "search"), searches=True, canonical=_log_canonical)
def logs(ctx: Context) -> str:
    """logs <words> [30m|1h|1d]: matching log lines, newest first (Loki and/or LOG_FILES)."""
    sources = _log_sources(ctx)
    terms, seconds = search_words(ctx.rest)
    prom = _find(ctx.services, "prometheus", PrometheusMonitor)
    if not sources and prom is not None and not ctx.leading and any(resolver.error_word(t) for t in terms):
        # "any errors in the last hour?" without log search: the error metric is the next best answer.
        return _named(ctx, prom, "errors") + composer.hint(" (Set LOKI_URL or LOG_FILES to search the logs.)")
    if not sources:
        raise CommandError("Not configured: set LOKI_URL or LOG_FILES to search logs.")
    deadline = ctx.services.settings.reply_deadline
    results = query_all([(m, "search", [str(seconds), *terms]) for m in sources], deadline)
    return " | ".join(_reply(r) for r in results)
