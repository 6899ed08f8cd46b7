"""Logging in to the dashboard from the Flask test client, the way a browser does: the form's CSRF token first."""

from __future__ import annotations

import re

from werkzeug.security import generate_password_hash

USER = "lead"
PASSWORD = "correct horse battery staple"
SECRET = "dashboard-test-secret-0123456789abcdef"
# Hashing costs (scrypt) are paid once per test run, not once per test.
PASSWORD_HASH = generate_password_hash(PASSWORD)

_TOKEN = re.compile(rb'name="csrf_token" type="hidden" value="([^"]+)"')


def csrf_token(client, path: str = "/dashboard/login") -> str:
    page = client.get(path)
    found = _TOKEN.search(page.data)
    assert found, f"no CSRF token on {path}: {page.status_code}"
    return found.group(1).decode()


def login(client, username: str = USER, password: str = PASSWORD, **extra):
    data = {"csrf_token": csrf_token(client), "username": username, "password": password, **extra}
    return client.post("/dashboard/login", data=data)


def post_form(client, path: str, **data):
    """POST a dashboard form with the CSRF token its page gave."""
    return client.post(path, data={"csrf_token": csrf_token(client, path), **data})
