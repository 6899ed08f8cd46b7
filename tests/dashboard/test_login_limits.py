"""The login limit: failures only, counted by the address Operator can trust (an IPv6 /64 as one),
by user name and by whoever connected, and never in the way of the right password from an address
that has not failed."""

from __future__ import annotations

import pytest

from config import ConfigError, Settings
from tests.support.apps import app_with, with_settings
from tests.support.dashboard import PASSWORD, USER, csrf_token
from tests.support.phones import TOKEN


def attempt(client, password: str, address: str = "127.0.0.1", forwarded: str | None = None,
            username: str = USER) -> int:  # fmt: skip
    """One login from `address` (the connection's), optionally claiming X-Forwarded-For: `forwarded`."""
    environ = {"REMOTE_ADDR": address}
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    token = csrf_token(client)
    data = {"csrf_token": token, "username": username, "password": password}
    response = client.post("/dashboard/login", data=data, headers=headers, environ_overrides=environ)
    return response.status_code


def fresh(app):
    return app.test_client()


def test_forged_forwarded_addresses_sent_straight_to_the_service_are_still_limited(settings):
    with app_with(with_settings(settings, proxy_hops=1)) as app:
        codes = [
            attempt(fresh(app), "guess", address="203.0.113.9", forwarded=f"198.51.100.{i}")
            for i in range(1, 41)
        ]
    assert 429 in codes
    assert codes.index(429) <= 31, codes


def test_behind_named_proxies_a_forged_header_from_anyone_else_is_ignored(settings):
    limited = with_settings(settings, proxy_hops=1, proxy_addresses=("10.0.0.5/32",))
    with app_with(limited) as app:
        codes = [
            attempt(fresh(app), "guess", address="203.0.113.9", forwarded=f"198.51.100.{i}")
            for i in range(1, 8)
        ]
        assert codes[:5] == [401] * 5 and codes[5:] == [429, 429]
        # The named proxy's clients are told apart by the address it forwards.
        for _ in range(5):
            attempt(fresh(app), "guess", address="10.0.0.5", forwarded="198.51.100.77")
        assert attempt(fresh(app), "guess", address="10.0.0.5", forwarded="198.51.100.77") == 429
        assert attempt(fresh(app), PASSWORD, address="10.0.0.5", forwarded="198.51.100.78") == 302


def test_behind_a_named_proxy_a_flood_of_failures_never_locks_out_a_client_that_has_not_failed(settings):
    limited = with_settings(settings, proxy_hops=1, proxy_addresses=("10.0.0.5",))
    with app_with(limited) as app:
        for i in range(40):
            attempt(fresh(app), "guess", address="10.0.0.5", forwarded=f"198.51.{i}.1")
        assert attempt(fresh(app), PASSWORD, address="10.0.0.5", forwarded="192.0.2.44") == 302


def test_every_address_of_one_ipv6_64_shares_one_limit(app):
    codes = [attempt(fresh(app), "guess", address=f"2001:db8:5:6::{i:x}") for i in range(1, 8)]
    assert codes[:5] == [401] * 5 and codes[5:] == [429, 429]
    assert attempt(fresh(app), PASSWORD, address="2001:db8:5:6:ffff::1") == 429
    assert attempt(fresh(app), PASSWORD, address="2001:db8:5:7::1") == 302


def test_successful_logins_never_count_toward_the_limit(app):
    assert all(attempt(fresh(app), PASSWORD) == 302 for _ in range(40))
    for _ in range(4):
        assert attempt(fresh(app), "guess") == 401
    assert attempt(fresh(app), PASSWORD) == 302


def test_a_user_name_under_attack_from_many_addresses_still_opens_for_the_right_password(app):
    attackers = [f"192.0.2.{i}" for i in range(1, 41)]
    assert all(attempt(fresh(app), "guess", address=a) == 401 for a in attackers)
    # Past the user name's limit, an address that failed once gets no second try...
    assert attempt(fresh(app), "guess again", address=attackers[5]) == 429
    assert attempt(fresh(app), PASSWORD, address=attackers[0]) == 429
    # ...while the right password from an address that has not failed still opens the dashboard.
    assert attempt(fresh(app), PASSWORD, address="198.51.100.20") == 302


def test_a_wrong_user_name_counts_like_a_wrong_password(app):
    codes = [attempt(fresh(app), PASSWORD, username="root") for _ in range(6)]
    assert codes == [401] * 5 + [429]


def test_proxy_addresses_are_read_as_networks_and_a_bad_one_is_named():
    env = {"TWILIO_AUTH_TOKEN": TOKEN, "PROXY_HOPS": "1", "PROXY_ADDRESSES": "127.0.0.1, 10.0.0.0/8,fd00::/8"}
    assert Settings.from_env(env).proxy_addresses == ("127.0.0.1/32", "10.0.0.0/8", "fd00::/8")
    with pytest.raises(ConfigError, match="PROXY_ADDRESSES"):
        Settings.from_env({**env, "PROXY_ADDRESSES": "10.0.0.300"})
