"""Times a person can trust at 3 a.m. (each carries its zone) and people named as the team calls them."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from app import create_app
from command_processor import registry
from core import db
from core.timeutil import clock
from oncall import handoffs
from tests.support.alerts import WEBHOOK_TOKEN, fire
from tests.support.apps import with_settings
from tests.support.fakes.alertmanager import FakeAlertmanager
from tests.support.oncall import ALICE, BOB, payments_and_infra, texts
from tests.support.phones import ADMIN, RESPONDER, Phone

# A time of day, then (after optional seconds) the zone it is in: CET, EST, UTC, or UTC-03 for a
# zone without letters of its own.
TIME = re.compile(r"\b\d{1,2}:\d{2}(?::\d{2})?\b")
ZONED = re.compile(r"\b\d{1,2}:\d{2}(?::\d{2})? (?:[A-Z]{3,5}|UTC[+-]\d{2}(?::\d{2})?)\b")

# Every registered command, driven the way a person texts it, in an order that gives each one
# something to answer about (an acked alert, a window, an override). A new command joins here.
SCRIPT = [
    "help",
    "status",
    "metrics",
    "db",
    "apps",
    "nr",
    "api",
    "logs error 1h",
    "alerts",
    "ack 1",
    "alerts 1",
    "snooze 2 30m",
    "snooze all 1h",
    "yes",
    "snooze all 2h",
    "no",
    "silence 1 2h",
    "unsilence 1",
    "maintenance 2h",
    "maintenance 3h",
    "maintenance 1h HighCPU",
    "maintenance",
    "maintenance off all",
    "oncall",
    "oncall take 4h payments",
    "oncall payments",
    "oncall give +15555550101 2h payments",
    "oncall",
    "alerts",
    "resolve 2",
    "alerts recent",
    "more",
    "thanks",
]


def an_hour_ago() -> str:
    return (datetime.now(UTC) - timedelta(hours=1)).replace(microsecond=0).isoformat()


@pytest.fixture
def alertmanager():
    with FakeAlertmanager() as fake:
        yield fake


@pytest.fixture
def app(settings, alertmanager):
    file = payments_and_infra(start=an_hour_ago(), zone="America/New_York")
    app = create_app(
        with_settings(
            settings,
            file=file,
            timezone="Europe/Berlin",
            alertmanager_token=WEBHOOK_TOKEN,
            alertmanager_url=alertmanager.url,
            rate_limit="1000 per minute",
            # Whole replies: where a MORE page breaks is the composer's business, not the clock's.
            sms_max_segments=10,
        )
    )
    yield app
    app.extensions["operator"].close()


def unzoned(text: str | None) -> list[str]:
    """The times in `text` that no zone follows."""
    text = text or ""
    zoned = {m.start() for m in ZONED.finditer(text)}
    return [m.group(0) for m in TIME.finditer(text) if m.start() not in zoned]


def test_the_script_drives_every_registered_command():
    assert {line.split()[0] for line in SCRIPT} == set(registry.commands)


def test_every_time_in_every_reply_of_every_command_names_its_zone(client):
    fire(client, "HighCPU", labels={"team": "payments"})
    fire(client, "DiskFull")
    phone = Phone(client, ADMIN)
    replies = {line: phone.text(line) for line in SCRIPT}
    assert {line: unzoned(reply) for line, reply in replies.items() if unzoned(reply)} == {}
    timed = [line for line, reply in replies.items() if TIME.search(reply or "")]
    # Not vacuous: the replies that name an end time do carry one.
    assert {
        "snooze 2 30m",
        "yes",
        "silence 1 2h",
        "maintenance 2h",
        "oncall",
        "oncall take 4h payments",
    } <= set(timed)


def test_a_maintenance_reply_names_the_zone_of_its_end_time(phone):
    before = db.now()
    reply = phone.text("maintenance 2h")
    ends = [clock(t + 7200, ZoneInfo("Europe/Berlin"), t) for t in (before, db.now())]
    assert any(f"until {end}" in reply for end in ends) and re.search(
        r"until (\w{3} )?\d\d:\d\d CES?T\b", reply
    ), reply


def test_a_snooze_and_a_silence_name_their_end_in_timezone(client, phone):
    fire(client, "HighCPU")
    assert re.search(r"for 30m, until (\w{3} )?\d\d:\d\d CES?T\b", phone.text("snooze 1 30m"))
    assert re.search(r"for 2h, until (\w{3} )?\d\d:\d\d CES?T\b", phone.text("silence 1 2h"))


def test_oncall_writes_a_teams_times_in_the_teams_own_zone(phone):
    payments, default = phone.text("oncall").splitlines()[:2]
    assert re.fullmatch(
        r"payments: Alice until (\w{3} )?(\d\d \w{3} )?\d\d:\d\d ED?ST, next Bob", payments
    ), payments
    assert re.search(r"until (\w{3} )?(\d\d \w{3} )?\d\d:\d\d UTC, next ", default), default


def test_handoff_texts_name_the_zone_of_every_time_they_give(client, services):
    handoffs.run(services)
    Phone(client, BOB).text("oncall take 4h payments")
    handoffs.run(services)
    notices = [body for _, body, _ in texts(services)]
    assert any(body.startswith("Your payments shift is over: Bob is on call until ") for body in notices)
    assert notices and all(TIME.search(body) and not unzoned(body) for body in notices), notices


def test_an_ack_by_a_named_member_says_acked_by_their_name(client, services):
    fire(client, "HighCPU", labels={"team": "payments"})
    alice, bob = Phone(client, ALICE), Phone(client, BOB)
    assert alice.text("ack 1").startswith("Acked #1")
    assert bob.text("ack 1").startswith("#1 already acked by Alice ")
    assert "acked by Alice " in bob.text("alerts 1")
    assert "(ack Alice)" in bob.text("alerts")
    bob.text("resolve 1")  # Alice was paged: she hears who closed it
    [(to, body, _)] = texts(services, "recovery")
    assert to == ALICE and body.startswith("RESOLVED by Bob after "), body


def test_a_maintenance_window_is_listed_with_the_name_of_who_started_it(client):
    Phone(client, ALICE).text("maintenance 2h")
    assert " by Alice, " in Phone(client, BOB).text("maintenance")


def test_an_ack_by_a_member_without_a_name_shows_the_masked_number(settings):
    file = payments_and_infra(start=an_hour_ago())
    del file["teams"]["payments"]["members"][0]["name"]
    app = create_app(with_settings(settings, file=file, alertmanager_token=WEBHOOK_TOKEN))
    try:
        client = app.test_client()
        fire(client, "HighCPU", labels={"team": "payments"})
        Phone(client, RESPONDER).text("ack 1")
        reply = Phone(client, ADMIN).text("ack 1")
        assert reply.startswith("#1 already acked by +1555***0101 ") and RESPONDER not in reply
    finally:
        app.extensions["operator"].close()


@pytest.mark.parametrize(
    "zone, moment, now, written",
    [
        # The same day: the time alone.
        ("UTC", "2026-12-08T18:00", "2026-12-08T01:00", "18:00 UTC"),
        ("Europe/Berlin", "2026-12-08T03:05", "2026-12-08T01:00", "03:05 CET"),
        # Another day: its name too, so 09:00 is never read as today's.
        ("Europe/Berlin", "2026-12-08T09:00", "2026-12-07T23:30", "Tue 09:00 CET"),
        ("Europe/Berlin", "2027-07-06T03:05", "2027-07-05T21:00", "Tue 03:05 CEST"),
        ("America/New_York", "2026-12-10T03:05", "2026-12-08T01:00", "Thu 03:05 EST"),
        # A zone without letters of its own is written as its offset from UTC, never bare "-03".
        ("America/Sao_Paulo", "2026-12-09T03:05", "2026-12-08T01:00", "Wed 03:05 UTC-03"),
        ("Asia/Kolkata", "2026-12-09T03:05", "2026-12-08T01:00", "Wed 03:05 IST"),
        # A week or more away: the date too.
        ("Europe/Berlin", "2026-12-15T03:05", "2026-12-08T01:00", "Tue 15 Dec 03:05 CET"),
    ],
)
def test_a_time_is_written_with_its_day_and_the_zones_abbreviation(zone, moment, now, written):
    tz = ZoneInfo(zone)
    at = datetime.fromisoformat(moment).replace(tzinfo=tz).timestamp()
    assert clock(at, tz, datetime.fromisoformat(now).replace(tzinfo=tz).timestamp()) == written


def test_a_full_time_for_tables_carries_the_date_the_seconds_and_the_zone():
    at = datetime(2026, 12, 8, 2, 5, 9, tzinfo=UTC).timestamp()
    assert clock(at, ZoneInfo("Europe/Berlin"), full=True) == "2026-12-08 03:05:09 CET"
    assert clock(at, ZoneInfo("UTC"), full=True) == "2026-12-08 02:05:09 UTC"
    assert clock(float("nan"), ZoneInfo("UTC"), full=True) == ""
