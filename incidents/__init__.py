"""Alerts as incidents: records, webhook intake, paging, reminders, escalation, Alertmanager silences.

Every source (threshold rules, Alertmanager, Datadog) ends up as the same records here, so the
phone commands and the texts work the same for all of them.
"""

from __future__ import annotations

from flask import Flask

from incidents.rulefile import RulesCheck
from incidents.silences import AlertmanagerCheck
from incidents.webhooks import bp
from monitors.checkup import add_check


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    services = app.extensions["operator"]
    add_check(app, "rules", RulesCheck(services))
    if services.settings.alertmanager_url:
        add_check(app, "alertmanager", AlertmanagerCheck(services.settings))
