"""Which team an alert belongs to, who of it is on call now (overrides first), and so who is paged.

`recipients_for` is paging's router (incidents.paging.route_with): with no `teams:` it says nothing
and the pager numbers are paged as before; an alert matching no team goes to the `default` team,
or, when there is none, to the pager numbers.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import Connection

from config import Settings
from incidents import paging, records
from incidents.records import Alert
from incidents.sources import TEAM_LABEL, Source
from oncall import schedule, store, teams
from oncall.store import Override
from oncall.teams import DEFAULT_TEAM, Team
from services import Services

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class OnCall:
    team: Team
    phone: str | None
    until: float
    next_phone: str | None
    override: bool = False


def labels_of(alert: Alert) -> dict[str, str]:
    """What `match` sees: the alert's labels, with its alertname and severity."""
    return paging.routing_labels(alert.name, alert.severity, alert.labels)


# Label sets already sorted, per teams mapping: (teams, {labels: team name or None}). Bounded, as
# a flood of distinct labels must not grow it without end; a miss only costs matching again.
_sorted: dict[int, tuple[Mapping[str, Team], dict[frozenset[tuple[str, str]], str | None]]] = {}
MAX_SORTED = 4096
_UNSORTED = object()


def _memo(configured: Mapping[str, Team]) -> dict[frozenset[tuple[str, str]], str | None]:
    entry = _sorted.get(id(configured))
    if entry is None or entry[0] is not configured:
        if len(_sorted) >= 8:  # teams read from older settings (tests, reloads): forget them
            _sorted.clear()
        entry = _sorted[id(configured)] = (configured, {})
    return entry[1]


def _match(labels: Mapping[str, str], configured: Mapping[str, Team]) -> Team | None:
    """The first team whose matchers all match, else the team a `team` label names, else the default team."""
    for team in configured.values():
        if team.match and all(m.matches(labels) for m in team.match):
            return team
    # A team without `match` takes the alerts labelled with its name.
    named = labels.get("team", "")
    if named in configured and not configured[named].match:
        return configured[named]
    return configured.get(DEFAULT_TEAM)


def sort(labels: Mapping[str, str], configured: Mapping[str, Team]) -> Team | None:
    """The team of a webhook alert with these labels (routing_labels), matched once per label set."""
    memo = _memo(configured)
    key = frozenset(labels.items())
    name = memo.get(key, _UNSORTED)
    if name is not _UNSORTED:
        return configured.get(name) if isinstance(name, str) else None
    team = _match(labels, configured)
    if len(memo) >= MAX_SORTED:
        memo.clear()
    memo[key] = team.name if team is not None else None
    return team


def presort(views: list[Mapping[str, str]], settings: Settings) -> None:
    """paging's presorter: match these label sets now, before the webhook's write transaction."""
    configured = teams.of(settings)
    if configured:
        for labels in views:
            sort(labels, configured)


def presort_open(services: Services) -> int:
    """The worker's first periodic job: sort the open alerts to their teams with no transaction
    open, so the jobs after it (escalation, handoffs, reminders) only look their teams up."""
    configured = teams.of(services.settings)
    if not configured:
        return 0
    with services.engine.connect() as conn:
        open_alerts = records.firing(conn)
    for alert in open_alerts:
        team_for(alert, configured)
    return len(open_alerts)


def team_for(alert: Alert, configured: Mapping[str, Team]) -> Team | None:
    """A rule's own `team:`; for webhook alerts the first team whose matchers all match, else the default team."""
    labels = labels_of(alert)
    if alert.source == Source.RULE:
        # A rule names its team (incidents.rules gives one naming nobody the default team);
        # one with its own recipients has none.
        named = labels.get("team", "")
        return configured.get(named) if named else None
    if labels.get(TEAM_LABEL) in configured:  # an integration's own `team:`
        return configured[labels[TEAM_LABEL]]
    return sort(labels, configured)


def feed_of(conn: Connection, team: Team) -> str:
    return team.ical_text or (store.feed(conn, team.name) if team.ical_url else "")


def _at(team: Team, feed: str, overrides: list[Override], now: float) -> tuple[str | None, float, bool]:
    """(who, until when, by an override) at `now`."""
    for override in overrides:  # newest first: the last override typed wins
        if override.starts_at <= now < override.ends_at:
            return override.phone, override.ends_at, True
    shift = schedule.shift_at(team, feed, now)
    # An override starting during the shift cuts it short.
    starts = [o.starts_at for o in overrides if now < o.starts_at < shift.end]
    return shift.phone, min(starts, default=shift.end), False


def on_call(conn: Connection, team: Team, now: float) -> OnCall:
    feed = feed_of(conn, team)
    overrides = store.active_overrides(conn, now, team.name)
    phone, until, override = _at(team, feed, overrides, now)
    following, at = phone, until
    for _ in range(8):  # a shift may hand to the same person (an override ending into their own turn)
        following, later, _ = _at(team, feed, overrides, at)
        if following != phone or later <= at:
            break
        at = later
    if following == phone:
        following = None
    return OnCall(team, phone, until, following, override)


def recipients_for(conn: Connection, alert: Alert, settings: Settings, now: float) -> paging.Route | None:
    """paging's router: the on-call of the alert's team (the whole team during a gap in its schedule)."""
    configured = teams.of(settings)
    if not configured:
        return None
    team = team_for(alert, configured)
    if team is None:
        return None
    try:
        current = on_call(conn, team, now)
    except Exception:  # noqa: BLE001 - a schedule that cannot be worked out must never lose a page
        logger.exception(
            "team %s: who is on call cannot be worked out; alert #%s pages the whole team",
            team.name,
            alert.id,
        )
        return paging.Route([m.phone for m in team.rota], team.name, team.escalation is not None)
    if current.phone:
        numbers = [current.phone]
    else:
        logger.warning("team %s has nobody on call: alert #%s pages the whole team", team.name, alert.id)
        numbers = [m.phone for m in team.rota]
    return paging.Route(numbers, team.name, team.escalation is not None)


paging.route_with(recipients_for, presort)
