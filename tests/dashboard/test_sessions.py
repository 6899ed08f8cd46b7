"""Sessions end on the server: logout, a new password and an admin's "log everyone out" end them,
and one lasts a fixed time from login however often it is used."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from http.cookies import SimpleCookie

from werkzeug.security import generate_password_hash

from tests.support.apps import app_with, with_settings
from tests.support.dashboard import csrf_token, login

COOKIE = "operator_dashboard"
OPENED = ["/dashboard/", "/dashboard/messages", "/dashboard/messages.csv", "/dashboard/alerts"]


def cookie_of(client) -> str:
    found = client.get_cookie(COOKIE)
    assert found is not None, "no session cookie"
    return found.value


def replayed(app, value: str):
    """A fresh browser holding nothing but a captured cookie."""
    other = app.test_client()
    other.set_cookie(COOKIE, value)
    return other


def opens(client, path: str) -> bool:
    return client.get(path).status_code == 200


def expiry(response) -> float | None:
    for header in response.headers.getlist("Set-Cookie"):
        parsed = SimpleCookie(header)
        if COOKIE in parsed and parsed[COOKIE]["expires"]:
            at = datetime.strptime(parsed[COOKIE]["expires"], "%a, %d %b %Y %H:%M:%S GMT")
            return at.replace(tzinfo=UTC).timestamp()
    return None


def test_a_cookie_captured_before_logout_opens_nothing_after_it(app, client):
    assert login(client).status_code == 302
    captured = cookie_of(client)
    assert all(opens(replayed(app, captured), path) for path in OPENED)
    client.post("/dashboard/logout", data={"csrf_token": _token(client)})
    thief = replayed(app, captured)
    for path in OPENED:
        response = thief.get(path)
        assert response.status_code == 302 and "/dashboard/login" in response.headers["Location"], path


def _token(client) -> str:
    return csrf_token(client, "/dashboard/")


def end_everyone(client):
    """Press "Log everyone out" (its form is on every page)."""
    return client.post("/dashboard/sessions/end", data={"csrf_token": _token(client)})


def test_using_a_session_never_hands_out_a_cookie_that_lives_longer(app, client):
    first = login(client)
    until = expiry(first)
    assert until is not None and until <= time.time() + 12 * 3600 + 5
    captured = cookie_of(client)
    time.sleep(1.1)  # a cookie's expiry is written in whole seconds
    for _ in range(3):
        for path in OPENED:
            response = replayed(app, captured).get(path)
            later = expiry(response)
            assert later is None or later <= until + 1, path


def test_a_session_ends_at_its_lifetime_however_often_it_is_used(settings):
    with app_with(with_settings(settings, dashboard_session_lifetime=2.0)) as app:
        client = app.test_client()
        assert login(client).status_code == 302
        captured = cookie_of(client)
        deadline = time.time() + 2.5
        while time.time() < deadline:
            opens(replayed(app, captured), "/dashboard/")
            time.sleep(0.2)
        assert replayed(app, captured).get("/dashboard/messages.csv").status_code == 302
        assert client.get("/dashboard/").status_code == 302


def test_a_new_password_ends_every_session_opened_with_the_old_one(settings):
    with app_with(settings) as app:
        client = app.test_client()
        assert login(client).status_code == 302
        captured = cookie_of(client)
    changed = with_settings(settings, dashboard_password=generate_password_hash("a brand new password"))
    with app_with(changed) as app:
        assert replayed(app, captured).get("/dashboard/").status_code == 302
    with app_with(settings) as app:  # and changing it back does not bring them back either
        assert replayed(app, captured).get("/dashboard/").status_code == 302


def test_an_admin_can_log_everyone_out(app):
    browsers = [app.test_client() for _ in range(3)]
    for browser in browsers:
        assert login(browser).status_code == 302
    captured = [cookie_of(b) for b in browsers]
    response = end_everyone(browsers[0])
    assert response.status_code == 302
    for value in captured:
        assert replayed(app, value).get("/dashboard/").status_code == 302
    fresh = app.test_client()
    assert login(fresh).status_code == 302 and opens(fresh, "/dashboard/")


def test_log_everyone_out_needs_its_csrf_token(app, client):
    assert login(client).status_code == 302
    assert client.post("/dashboard/sessions/end").status_code in (400, 302)
    assert opens(client, "/dashboard/")


def test_a_viewer_cannot_log_everyone_out(viewer_app):
    other, viewer = viewer_app.test_client(), viewer_app.test_client()
    assert login(other).status_code == 302 and login(viewer).status_code == 302
    response = end_everyone(viewer)
    assert response.status_code == 403
    assert opens(other, "/dashboard/")


def test_sessions_are_shared_by_every_process_through_the_store(settings):
    with app_with(settings) as one, app_with(settings) as two:
        client = one.test_client()
        assert login(client).status_code == 302
        captured = cookie_of(client)
        assert opens(replayed(two, captured), "/dashboard/")
        client.post("/dashboard/logout", data={"csrf_token": _token(client)})
        assert replayed(two, captured).get("/dashboard/").status_code == 302
