"""Who may see the dashboard: one user (DASHBOARD_USER) whose password is stored as a hash,
a session cookie after login, CSRF tokens on every form, and a limit on login attempts."""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import re
from collections.abc import Callable
from typing import Any, TypeVar

import click
from flask import current_app, redirect, request, session, url_for
from flask_wtf import FlaskForm
from werkzeug.security import check_password_hash, generate_password_hash
from wtforms import HiddenField, PasswordField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length

from rate_limiter import RateLimiter
from services import Services

logger = logging.getLogger(__name__)

# Per client address: enough for a person who mistypes, far too few to guess a password.
LOGIN_LIMITS = "5 per minute; 30 per hour"
F = TypeVar("F", bound=Callable[..., Any])


class LoginForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired(), Length(max=200)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1000)])
    next = HiddenField()


class PhoneForm(FlaskForm):
    number = StringField("From", validators=[DataRequired(), Length(max=32)])
    body = TextAreaField("Text", validators=[DataRequired(), Length(max=1600)])


class PlainForm(FlaskForm):
    """A form that is only its CSRF token (log out)."""


def services() -> Services:
    svc: Services = current_app.extensions["operator"]
    return svc


def login_limiter() -> RateLimiter:
    limiter: RateLimiter | None = current_app.extensions.get("dashboard.login_limiter")
    if limiter is None:
        shared = services().limiter
        limiter = RateLimiter(shared.storage, LOGIN_LIMITS, "dashboard-login", fallback=shared.fallback)
        current_app.extensions["dashboard.login_limiter"] = limiter
    return limiter


def check_login(username: str, password: str) -> bool:
    settings = services().settings
    # Both compared every time, so a wrong name costs as long as a wrong password.
    name_ok = hmac.compare_digest(username.encode(), settings.dashboard_user.encode())
    try:
        password_ok = check_password_hash(settings.dashboard_password, password)
    except ValueError:
        password_ok = False
    return name_ok and password_ok


def role() -> str:
    return services().settings.dashboard_role


def is_admin() -> bool:
    return role() == "admin"


def credential() -> str:
    """Stands for the current user and password hash in the session: a new password (or user)
    ends every session opened with the old one, without keeping the hash in the cookie."""
    settings = services().settings
    material = f"{settings.dashboard_user}\0{settings.dashboard_password}".encode()
    return hmac.new(settings.secret_key.encode(), material, hashlib.sha256).hexdigest()[:32]


def logged_in() -> bool:
    given = session.get("login")
    return isinstance(given, str) and hmac.compare_digest(given, credential())


def login_required(view: F) -> F:
    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if not logged_in():
            return redirect(url_for("dashboard.login", next=request.full_path.rstrip("?")))
        return view(*args, **kwargs)

    return wrapped  # type: ignore[return-value]


# A path of the dashboard and its query, in plain characters (no "//", "\\", "..", controls).
_NEXT = re.compile(r"/dashboard(/[A-Za-z0-9_\-.]*)*(\?[A-Za-z0-9_\-.=&%+:]*)?")


def safe_next(target: str | None) -> str:
    """Where to go after login: a page of the dashboard itself, never another site."""
    if target and _NEXT.fullmatch(target) and "//" not in target and ".." not in target:
        return target
    return url_for("dashboard.overview")


@click.group("dashboard")
def dashboard_command() -> None:
    """The dashboard's login."""


@dashboard_command.command("hash-password")
@click.password_option("--password", prompt="Dashboard password")
def hash_password(password: str) -> None:
    """Print the hash to put in DASHBOARD_PASSWORD."""
    click.echo(generate_password_hash(password))


hash_password_command = dashboard_command
