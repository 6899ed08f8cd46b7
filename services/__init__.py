"""What a request or the worker needs, built once per process from Settings."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from config import Settings
from core import db
from monitors import BaseMonitor, build_monitors
from rate_limiter import RateLimiter, SQLStorage, make_storage


@dataclass
class Services:
    settings: Settings
    engine: Engine
    monitors: dict[str, BaseMonitor]
    limiter: RateLimiter

    def close(self) -> None:
        for monitor in self.monitors.values():
            monitor.close()
        self.engine.dispose()


def build_services(settings: Settings) -> Services:
    """Connect to the store (bringing its schema up to date) and build the configured parts."""
    engine = db.make_engine(settings.database_url)
    db.ensure_db(engine, settings.migrate_on_start)
    storage = make_storage(settings.redis_url, engine)
    fallback = SQLStorage(engine) if settings.redis_url else None
    return Services(
        settings=settings,
        engine=engine,
        monitors=build_monitors(settings),
        limiter=RateLimiter(storage, settings.rate_limit, "sms", fallback=fallback),
    )
