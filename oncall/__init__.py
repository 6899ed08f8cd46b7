"""On-call teams: schedules (rotation or iCal), overrides by SMS, routing by labels, escalation policies.

Sits above incidents: it reads alerts through incidents' functions, and hands paging its router
(oncall.routing), so every page, reminder and escalation goes to the alert's team's on-call. The
leading worker runs its jobs (PERIODIC_JOBS): escalation steps, handoff texts and gap warnings,
and the fetching of iCal feeds given as URLs.
"""

from __future__ import annotations

from flask import Flask

# Importing routing hands paging its router (incidents.paging.route_with).
from oncall import routing, teams  # noqa: F401


def init_app(app: Flask) -> None:
    """Read the `teams:` section now: a mistake in it stops start-up naming the team and key."""
    teams.of(app.extensions["operator"].settings)
