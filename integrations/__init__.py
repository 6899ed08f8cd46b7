"""Integrations as configuration: each `integrations:` entry of operator.yml is a door for one sender.

A door is a thin adapter: a pure parser (incidents.sources) and its vendor's answer shapes
(integrations.doors); intake, dedup, routing and paging are the /webhook/* path's. `flask
integrations` prints each door's URL and the snippet to paste into the sender.
"""

from __future__ import annotations

from flask import Flask

from integrations.cli import integrations_command
from integrations.doors import ENTRIES, LIMITERS, bp
from integrations.entries import parse_integrations
from rate_limiter import RateLimiter


def init_app(app: Flask) -> None:
    services = app.extensions["operator"]
    found = parse_integrations(services.settings)  # ConfigError names the entry and key
    app.extensions[ENTRIES] = found
    # In the store every worker counts in (Redis when REDIS_URL is set), as the SMS limit is.
    app.extensions[LIMITERS] = {
        name: RateLimiter(
            services.limiter.storage,
            entry.limit,
            f"integration-{name}",
            fallback=services.limiter.fallback,
        )
        for name, entry in found.items()
        if entry.limit
    }
    app.register_blueprint(bp)
    app.cli.add_command(integrations_command)
