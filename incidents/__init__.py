"""Alerts as incidents: records, webhook intake, paging, reminders, escalation, Alertmanager silences.

Every source (threshold rules, Alertmanager, Datadog) ends up as the same records here, so the
phone commands and the texts work the same for all of them.
"""

from __future__ import annotations

from flask import Flask

from incidents.webhooks import bp


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
