"""The dead man's switch: `heartbeats:` of the config file, pinged over HTTP or by Alertmanager's Watchdog.

Pings arrive at /heartbeat/<name> (heartbeats.routes) and as Alertmanager's always-firing Watchdog
alert on the Alertmanager webhook (incidents hands those over here instead of paging them). The
leading worker pages for silent ones (heartbeats.watch). Sits above incidents: its pages,
reminders and recoveries are ordinary alert records.
"""

from __future__ import annotations

from flask import Flask

from heartbeats import watch
from heartbeats.routes import bp, watchdog
from incidents import webhooks
from monitors import checkup


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    webhooks.on_watchdog(app, watchdog)
    checkup.add_check(app, "heartbeats", checkup.OwnCheck(lambda: watch.check(app.extensions["operator"])))
