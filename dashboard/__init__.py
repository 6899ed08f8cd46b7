"""The team's view: /dashboard, a login, the overview, the message log, alerts, rules, the phone panel.

Off (404) until DASHBOARD_PASSWORD holds a password hash. It only reads through the owning
packages' functions, and the phone panel answers through inbound.pipeline like /sms; so it sits
at the top of the layers, beside the app factory.
"""

from __future__ import annotations

from datetime import timedelta

from flask import Flask

from dashboard.auth import FixedEndSessions, hash_password_command
from dashboard.views import bp
from services import Services


def init_app(app: Flask) -> None:
    app.cli.add_command(hash_password_command)
    svc: Services = app.extensions["operator"]
    settings = svc.settings
    if not settings.dashboard_password:
        return
    app.secret_key = settings.secret_key
    app.config.update(
        SESSION_COOKIE_NAME="operator_dashboard",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.public_url.startswith("https://"),
        PERMANENT_SESSION_LIFETIME=timedelta(seconds=settings.dashboard_session_lifetime),
        # A use never re-sends the cookie: its end is the login's, kept in the store (auth).
        SESSION_REFRESH_EACH_REQUEST=False,
        WTF_CSRF_TIME_LIMIT=None,  # the token lives as long as the session
    )
    app.session_interface = FixedEndSessions()
    app.register_blueprint(bp)
