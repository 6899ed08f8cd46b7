"""Who gets in: a hashed password, CSRF on every form, limited failures, a careful cookie, off by default."""

from __future__ import annotations

import pytest
from werkzeug.security import generate_password_hash

from config import ConfigError, Settings
from tests.support.apps import app_with, with_settings
from tests.support.dashboard import PASSWORD, PASSWORD_HASH, SECRET, USER, csrf_token, login
from tests.support.phones import TOKEN

PAGES = ["/dashboard/", "/dashboard/messages", "/dashboard/messages.csv", "/dashboard/alerts",
         "/dashboard/alerts/1", "/dashboard/rules", "/dashboard/phone"]  # fmt: skip


def test_the_dashboard_is_not_there_without_a_password(settings):
    with app_with(with_settings(settings, dashboard_password="", secret_key="")) as app:
        client = app.test_client()
        for path in ["/dashboard/login", *PAGES]:
            assert client.get(path).status_code == 404


@pytest.mark.parametrize("page", PAGES)
def test_every_page_sends_a_stranger_to_the_login(client, page):
    response = client.get(page)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/dashboard/login")


def test_the_right_user_and_password_open_the_overview(client):
    response = login(client)
    assert response.status_code == 302 and response.headers["Location"] == "/dashboard/"
    assert b"Open alerts" in client.get("/dashboard/").data


@pytest.mark.parametrize(
    "username, password",
    [(USER, "wrong"), ("someone", PASSWORD), (USER, PASSWORD + " "), (USER, PASSWORD_HASH), ("", "")],
)
def test_a_wrong_user_or_password_is_refused(client, username, password):
    response = login(client, username=username, password=password)
    assert response.status_code in (400, 401)
    assert client.get("/dashboard/").status_code == 302


def test_a_login_without_its_csrf_token_is_refused(client):
    response = client.post("/dashboard/login", data={"username": USER, "password": PASSWORD})
    assert response.status_code == 400
    assert b"expired" in response.data
    assert client.get("/dashboard/").status_code == 302


def test_a_csrf_token_from_another_session_is_refused(app, client):
    other = app.test_client()
    token = csrf_token(other)
    response = client.post(
        "/dashboard/login", data={"csrf_token": token, "username": USER, "password": PASSWORD}
    )
    assert response.status_code == 400


def test_failed_logins_are_limited_even_for_the_right_password_afterwards(client):
    for _ in range(5):
        assert login(client, password="guess").status_code == 401
    response = login(client)
    assert response.status_code == 429
    assert b"Too many login attempts" in response.data
    assert client.get("/dashboard/").status_code == 302


def test_the_session_cookie_is_httponly_and_samesite_and_not_secure_over_http(client):
    cookie = login(client).headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie


def test_the_session_cookie_is_secure_when_the_public_url_is_https(settings):
    with app_with(with_settings(settings, public_url="https://ops.example.com")) as app:
        cookie = login(app.test_client()).headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example/x",
        "https://evil.example/",
        "/\\evil.example",
        "/sms",
        "/dashboard/../sms",
        "/dashboard/\r\nLocation: x",
    ],
)
def test_after_login_only_a_dashboard_page_is_a_destination(client, target):
    response = login(client, next=target)
    assert response.headers["Location"] == "/dashboard/"


def test_logging_out_needs_the_token_and_ends_the_session(lead):
    lead.post("/dashboard/logout", data={})
    assert lead.get("/dashboard/").status_code == 200
    lead.post("/dashboard/logout", data={"csrf_token": csrf_token(lead, "/dashboard/")})
    assert lead.get("/dashboard/").status_code == 302


@pytest.mark.parametrize("page", ["/dashboard/login", *PAGES])
def test_every_dashboard_response_forbids_scripts_and_framing(lead, page):
    response = lead.get(page)
    policy = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "script-src" not in policy
    assert "unsafe-inline" not in policy and "frame-ancestors 'none'" in policy


def test_a_plain_password_in_the_setting_is_refused_at_start():
    env = {"TWILIO_AUTH_TOKEN": TOKEN, "DASHBOARD_PASSWORD": "hunter2", "SECRET_KEY": SECRET}
    with pytest.raises(ConfigError, match="DASHBOARD_PASSWORD.*hash-password"):
        Settings.from_env(env)


def test_the_dashboard_needs_a_secret_key():
    env = {"TWILIO_AUTH_TOKEN": TOKEN, "DASHBOARD_PASSWORD": PASSWORD_HASH}
    with pytest.raises(ConfigError, match="^SECRET_KEY"):
        Settings.from_env(env)


@pytest.mark.parametrize("price", ["-1", "abc", "nan", "inf"])
def test_a_bad_segment_price_is_named(price):
    with pytest.raises(ConfigError, match="^SMS_SEGMENT_PRICE"):
        Settings.from_env({"TWILIO_AUTH_TOKEN": TOKEN, "SMS_SEGMENT_PRICE": price})


def test_the_hash_password_command_prints_a_hash_the_setting_accepts(app):
    result = app.test_cli_runner().invoke(args=["dashboard", "hash-password"], input="s3cret\ns3cret\n")
    hashed = result.output.strip().splitlines()[-1]
    settings = Settings.from_env(
        {"TWILIO_AUTH_TOKEN": TOKEN, "DASHBOARD_PASSWORD": hashed, "SECRET_KEY": SECRET}
    )
    assert settings.dashboard_password == hashed


@pytest.mark.parametrize(
    "path", ["/dashboard/<script>x</script>", "/dashboard/alerts/x", "/dashboard/nothing"]
)
def test_an_unknown_dashboard_address_is_a_404_with_the_same_policy(lead, path):
    response = lead.get(path)
    assert response.status_code == 404
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    assert b"<script>" not in response.data


def test_a_new_password_ends_the_sessions_opened_with_the_old_one(app, settings):
    client = app.test_client()
    assert login(client).status_code == 302
    cookie = client.get_cookie("operator_dashboard")
    with app_with(settings) as same:
        unchanged = same.test_client()
        unchanged.set_cookie("operator_dashboard", cookie.value)
        assert unchanged.get("/dashboard/").status_code == 200
    new_hash = generate_password_hash("a new password")
    with app_with(with_settings(settings, dashboard_password=new_hash)) as changed:
        other = changed.test_client()
        other.set_cookie("operator_dashboard", cookie.value)
        assert other.get("/dashboard/").status_code == 302
