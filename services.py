"""Everything a request or the worker needs, built once per process from Settings."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

import alerting  # noqa: F401 - defines its tables on store.metadata
import sender  # noqa: F401 - defines its tables on store.metadata
import sms  # noqa: F401 - defines its tables on store.metadata
import store
from config import Settings
from incidents import store as alert_store  # noqa: F401 - defines its tables on store.metadata
from monitors import BaseMonitor, build_monitors
from pages import PageStore
from rate_limiter import RateLimiter, make_storage


@dataclass
class Services:
    settings: Settings
    engine: Engine
    monitors: dict[str, BaseMonitor]
    limiter: RateLimiter
    pages: PageStore

    def close(self) -> None:
        for monitor in self.monitors.values():
            monitor.close()
        self.engine.dispose()


def build_services(settings: Settings) -> Services:
    """Connect to the store (creating/migrating tables) and build the configured parts."""
    engine = store.make_engine(settings.database_url)
    store.ensure_db(engine)
    storage = make_storage(settings.redis_url, engine)
    return Services(
        settings=settings,
        engine=engine,
        monitors=build_monitors(settings),
        limiter=RateLimiter(storage, settings.rate_limit, "sms"),
        pages=PageStore(engine),
    )
