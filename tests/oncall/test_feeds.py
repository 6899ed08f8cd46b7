"""iCal feeds given as URLs: fetched by the worker's job into the store, the last good copy kept."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from app import create_app
from oncall import feeds, routing, teams
from tests.support.apps import with_settings
from tests.support.fakes.loopback import FakeServer, Request
from tests.support.oncall import ALICE, BOB, at
from tests.support.paths import PAYLOADS


@dataclass
class CalendarHost(FakeServer):
    status: int = 200
    body: str = ""

    def answer(self, request: Request):
        return self.status, {"Content-Type": "text/calendar"}, self.body


@pytest.fixture
def host():
    server = CalendarHost(body=(PAYLOADS / "oncall_weekly.ics").read_text())
    with server:
        yield server


@pytest.fixture
def services(settings, host):
    members = [{"phone": ALICE, "name": "Alice"}, {"phone": BOB, "role": "admin", "name": "Bob"}]
    file = {
        "teams": {
            "payments": {"members": members, "ical": host.url + "/payments.ics", "zone": "Europe/Berlin"}
        }
    }
    # MONITOR_TIMEOUT bounds the fetch too: a hanging host is given up on in a second.
    app = create_app(with_settings(settings, file=file, monitor_timeout=0.5))
    yield app.extensions["operator"]
    app.extensions["operator"].close()


def who(services, when: str) -> str | None:
    team = teams.of(services.settings)["payments"]
    with services.engine.connect() as conn:
        return routing.on_call(conn, team, at(when)).phone


def test_a_url_feed_is_fetched_into_the_store_and_gives_the_schedule(services, host):
    assert who(services, "2026-12-08T12:00") is None  # not fetched yet: nobody
    assert feeds.run(services) == 1
    assert (who(services, "2026-12-08T12:00"), who(services, "2026-12-15T12:00")) == (ALICE, BOB)
    assert host.requests[0].path == "/payments.ics"


@pytest.mark.parametrize("status, body", [(500, "oops"), (200, "<html>login</html>")])
def test_a_feed_host_that_fails_or_answers_no_calendar_keeps_the_last_copy(
    services, host, caplog, status, body
):
    feeds.run(services)
    host.status, host.body = status, body
    assert feeds.run(services) == 0
    assert who(services, "2026-12-08T12:00") == ALICE
    assert any("keeping the last copy" in r.getMessage() for r in caplog.records)


def test_a_feed_host_that_hangs_is_given_up_on_and_the_last_copy_kept(services, host):
    feeds.run(services)
    host.hang = True
    assert feeds.run(services) == 0
    assert who(services, "2026-12-08T12:00") == ALICE
