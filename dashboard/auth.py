"""Who may see the dashboard: one user (DASHBOARD_USER) whose password is stored as a hash,
a session kept in the store after login (dashboard.sessions), CSRF tokens on every form, and a
limit on failed login attempts."""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import click
from flask import Flask, current_app, g, redirect, request, session, url_for
from flask.sessions import SecureCookieSessionInterface, SessionMixin
from flask_wtf import FlaskForm
from werkzeug.security import check_password_hash, generate_password_hash
from wtforms import HiddenField, PasswordField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length

from core import db
from dashboard import sessions
from rate_limiter import RateLimiter
from security import connected_from, is_named_proxy, source_of
from services import Services

logger = logging.getLogger(__name__)

# Failed logins only, counted under three names at once. The client's address (its /64 for IPv6):
# enough for a person who mistypes, far too few to guess a password.
ADDRESS_LIMITS = "5 per minute; 30 per hour"
# The user name tried, from anywhere: past it, only an address that has not failed gets a try.
USER_LIMITS = "10 per minute; 60 per hour"
# Whoever opened the connection, when it is not a proxy named in PROXY_ADDRESSES: a caller that
# reaches the service directly could forge a new X-Forwarded-For for every guess.
CONNECTION_LIMITS = "30 per minute; 300 per hour"
F = TypeVar("F", bound=Callable[..., Any])


class LoginForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired(), Length(max=200)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1000)])
    next = HiddenField()


class PhoneForm(FlaskForm):
    number = StringField("From", validators=[DataRequired(), Length(max=32)])
    body = TextAreaField("Text", validators=[DataRequired(), Length(max=1600)])


class PlainForm(FlaskForm):
    """A form that is only its CSRF token (log out, log everyone out)."""


def services() -> Services:
    svc: Services = current_app.extensions["operator"]
    return svc


class LoginLimits:
    """Failed dashboard logins, counted by address, user name and connection (rate_limiter's store)."""

    def __init__(self, shared: RateLimiter):
        def limiter(limits: str, namespace: str) -> RateLimiter:
            return RateLimiter(shared.storage, limits, namespace, fallback=shared.fallback)

        self.address = limiter(ADDRESS_LIMITS, "dashboard-login")
        self.user = limiter(USER_LIMITS, "dashboard-login-user")
        self.connection = limiter(CONNECTION_LIMITS, "dashboard-login-connection")

    def _keys(self, username: str) -> tuple[str, str, str | None]:
        address = source_of(request.remote_addr)
        user = hashlib.sha256(username.strip().lower().encode()).hexdigest()[:32]
        peer = connected_from(request)
        connection = source_of(peer)
        # Counted apart only when the request came through someone who may have forged it.
        if connection == address or is_named_proxy(peer, services().settings):
            return address, user, None
        return address, user, connection

    def refusal(self, username: str) -> float | None:
        """Seconds to wait before this request may try a password, or None when it may now.

        The right password is never refused to an address that has not failed: another's
        failures under the same user name only stop addresses that have failed themselves. The
        one exception is a connection over its own limit, which only exists when PROXY_HOPS is
        set without PROXY_ADDRESSES (then a new address per guess may be forged, see _keys).
        """
        address, user, connection = self._keys(username)
        mine = self.address.peek(address)
        if mine.over:
            return mine.retry_after
        if connection is not None and (through := self.connection.peek(connection)).over:
            return through.retry_after
        named = self.user.peek(user)
        if named.over and mine.counted:
            return named.retry_after
        return None

    def failed(self, username: str) -> None:
        """Count a wrong user name or password (a right one is never counted)."""
        address, user, connection = self._keys(username)
        self.address.hit(address)
        self.user.hit(user)
        if connection is not None:
            self.connection.hit(connection)


def login_limits() -> LoginLimits:
    limits: LoginLimits | None = current_app.extensions.get("dashboard.login_limits")
    if limits is None:
        limits = LoginLimits(services().limiter)
        current_app.extensions["dashboard.login_limits"] = limits
    return limits


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


def current_session() -> sessions.Session | None:
    """This request's session, if its cookie names one that is live in the store and was opened
    with today's user, password and role; read once per request."""
    if "dashboard_session" in g:
        found: sessions.Session | None = g.dashboard_session
        return found
    found = None
    token = session.get("sid")
    if isinstance(token, str) and token:
        with services().engine.connect() as conn:
            row = sessions.live(conn, token, db.now())
        if row and hmac.compare_digest(row.credential, credential()) and row.role == role():
            found = row
        elif row:
            # Opened with another user, password or role: over for good, even if that comes back.
            with services().engine.begin() as conn:
                sessions.end(conn, token, db.now(), sessions.Ended.CHANGED)
    g.dashboard_session = found
    return found


def logged_in() -> bool:
    return current_session() is not None


def open_session() -> None:
    """Log in: a fresh cookie (nothing set before login survives it) naming a new stored session."""
    settings, now = services().settings, db.now()
    lifetime = settings.dashboard_session_lifetime
    with services().engine.begin() as conn:
        token = sessions.start(conn, settings.dashboard_user, role(), credential(), now, lifetime)
    session.clear()
    session["sid"] = token
    session["until"] = now + lifetime
    session.permanent = True
    g.pop("dashboard_session", None)


def close_session() -> None:
    """Log out: the stored session ends, so a copy of the cookie opens nothing either."""
    token = session.get("sid")
    if isinstance(token, str) and token:
        with services().engine.begin() as conn:
            sessions.end(conn, token, db.now())
    session.clear()
    g.pop("dashboard_session", None)


def close_every_session() -> int:
    """An admin's "log everyone out": every stored session ends; how many were open."""
    with services().engine.begin() as conn:
        ended = sessions.end_all(conn, db.now())
    session.clear()
    g.pop("dashboard_session", None)
    return ended


class FixedEndSessions(SecureCookieSessionInterface):
    """Cookies that expire when their session does: a use re-sends no cookie that lives longer.

    (Flask's own re-dates a permanent cookie to now + lifetime each time it is written; the end
    that counts is the stored one, this keeps the browser's copy in step with it.)
    """

    def get_expiration_time(self, app: Flask, session: SessionMixin) -> datetime | None:
        until = session.get("until")
        if session.permanent and isinstance(until, int | float):
            return datetime.fromtimestamp(until, UTC)
        return super().get_expiration_time(app, session)


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
