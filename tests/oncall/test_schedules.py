"""Schedules: rotation handoffs (across daylight-saving changes), iCal feeds, and the `teams:` section's errors."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from config import ConfigError
from oncall import schedule, teams
from tests.support.oncall import ALICE, BERLIN, BOB, at
from tests.support.paths import PAYLOADS


def rotation_team(every: str, start: str) -> teams.Team:
    section = {
        "p": {
            "members": [ALICE, f"{BOB}:admin", "+15555550102:viewer"],
            "rotation": {"every": every, "start": start},
        }
    }
    return teams.parse_teams(section)["p"]


def feed_team() -> teams.Team:
    members = [{"phone": ALICE, "name": "Alice"}, {"phone": BOB, "role": "admin", "name": "Bob"}]
    return teams.parse_teams(
        {"p": {"members": members, "ical": str(PAYLOADS / "oncall_weekly.ics"), "zone": "Europe/Berlin"}}
    )["p"]


def local(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, BERLIN).strftime("%Y-%m-%d %H:%M %z")


def test_a_weekly_rotation_hands_over_at_start_plus_whole_weeks_to_the_second():
    team = rotation_team("1w", "2026-12-07T09:00 Europe/Berlin")
    handoff = at("2026-12-14T09:00")
    assert schedule.shift_at(team, "", handoff - 1).phone == ALICE
    assert schedule.shift_at(team, "", handoff).phone == BOB
    assert schedule.shift_at(team, "", at("2026-12-21T09:00")).phone == ALICE  # viewers never take a turn


@pytest.mark.parametrize(
    "start, moment, handoff",
    [
        # Spring forward (28 March 2027): the day is 23 hours long, the handoff stays at 09:00 local.
        ("2027-03-26T09:00 Europe/Berlin", "2027-03-28T08:30", "2027-03-28 09:00 +0200"),
        # Fall back (31 October 2027): a 25-hour day.
        ("2027-10-29T09:00[Europe/Berlin]", "2027-10-31T08:30", "2027-10-31 09:00 +0100"),
    ],
)
def test_a_daily_rotation_hands_over_at_the_same_local_time_across_a_daylight_saving_change(
    start, moment, handoff
):
    team = rotation_team("1d", start)
    shift = schedule.shift_at(team, "", at(moment))
    assert local(shift.end) == handoff
    assert schedule.shift_at(team, "", shift.end).phone != shift.phone
    assert schedule.shift_at(team, "", shift.end - 1).phone == shift.phone


def test_an_hourly_rotation_counts_elapsed_time_through_a_daylight_saving_change():
    team = rotation_team("12h", "2027-03-27T21:00+01:00")
    shift = schedule.shift_at(team, "", at("2027-03-28T10:00"))
    assert local(shift.start) == "2027-03-28 10:00 +0200"  # 12 elapsed hours after 21:00 +0100


@pytest.mark.parametrize(
    "day, expected",
    [
        ("2026-12-08T12:00", ALICE),  # the weekly Monday-to-Thursday series
        ("2026-12-11T12:00", BOB),  # the weekly Thursday-to-Monday series, named by number
        ("2026-12-15T12:00", BOB),  # the one exception: Alice's second week moved to Bob
        ("2026-12-18T12:00", BOB),
        ("2026-12-22T12:00", ALICE),  # the series again after the exception
        ("2026-12-29T12:00", None),  # an EXDATE: a gap
        ("2026-12-31T12:00", BOB),
    ],
)
def test_an_ical_feed_with_a_weekly_recurrence_and_an_exception_gives_the_right_person_each_day(
    day, expected
):
    team = feed_team()
    assert schedule.shift_at(team, team.ical_text, at(day)).phone == expected


def test_a_gap_in_an_ical_feed_is_found_with_its_true_start():
    team = feed_team()
    [gap] = schedule.gaps(team, team.ical_text, at("2026-12-27T12:00"), at("2026-12-28T12:00"))
    assert (local(gap.start), local(gap.end)) == ("2026-12-28 09:00 +0100", "2026-12-31 09:00 +0100")
    assert schedule.shift_at(team, team.ical_text, at("2026-12-30T00:00")).start == gap.start


GOOD = {"members": [ALICE], "rotation": {"every": "1w", "start": "2026-12-07T09:00 Europe/Berlin"}}


@pytest.mark.parametrize(
    "team, message",
    [
        ({"members": [ALICE]}, "teams: payments: needs a 'rotation'"),
        ({**GOOD, "members": ["5550100"]}, "teams: payments: member '5550100' is not an E.164 number"),
        ({**GOOD, "members": [f"{ALICE}:boss"]}, "teams: payments: member +1555***: role 'boss'"),
        ({**GOOD, "members": [f"{ALICE}:viewer"]}, "teams: payments: 'members' needs at least one responder"),
        (
            {**GOOD, "rotation": {"every": "weekly", "start": "2026-12-07T09:00Z"}},
            "teams: payments: rotation 'every'",
        ),
        (
            {**GOOD, "rotation": {"every": "1w", "start": "2026-12-07T09:00"}},
            "teams: payments: rotation 'start' needs an offset",
        ),
        (
            {**GOOD, "rotation": {"every": "1w", "start": "2026-12-07T09:00 Mars/Olympus"}},
            "teams: payments: unknown time zone 'Mars/Olympus'",
        ),
        (
            {**GOOD, "ical": "/nonexistent/feed.ics"},
            "teams: payments: 'ical': cannot read /nonexistent/feed.ics",
        ),
        (
            {**GOOD, "match": {"service": "=~pay("}},
            "teams: payments: match service: '=~pay(' is not a regular expression",
        ),
        (
            {**GOOD, "match": {"service": r"=~(pay)\1"}},
            r"teams: payments: match service: '=~(pay)\\1' is not a regular expression RE2 accepts",
        ),
        (
            {**GOOD, "match": {"instance": "=~(?!db).*"}},
            "teams: payments: match instance: '=~(?!db).*' is not a regular expression RE2 accepts",
        ),
        (
            {**GOOD, "escalation": [{"after": "soon"}]},
            "teams: payments: escalation step 1: 'after' must be a duration",
        ),
        (
            {**GOOD, "escalation": [{"notify": "boss"}]},
            "teams: payments: escalation step 1: 'notify' must be oncall, next, team",
        ),
        (
            {**GOOD, "escalation": [{"via": "pigeon"}]},
            "teams: payments: escalation step 1: 'via' must be sms or call",
        ),
        (
            {**GOOD, "escalation": [{"after": "10m"}, {"after": "5m"}]},
            "teams: payments: escalation step 2: 'after' counts",
        ),
        (
            {**GOOD, "escalation": {"steps": [{"after": 0}], "repeat": 2}},
            "teams: payments: escalation 'repeat' needs a step",
        ),
        ({**GOOD, "colour": "red"}, "teams: payments: unknown key(s) colour"),
        (
            {**GOOD, "rotation": {"every": "1w", "start": date(2026, 12, 7)}},
            "teams: payments: rotation 'start' needs an offset",
        ),
        (
            {**GOOD, "rotation": {"every": "1w", "start": "9999-12-31T09:00Z"}},
            "teams: payments: rotation 'start' must be between",
        ),
        (
            {**GOOD, "rotation": {"every": "100000w", "start": "2026-12-07T09:00Z"}},
            "teams: payments: rotation 'every' must be at most",
        ),
        ({**GOOD, "members": [15555550101]}, "teams: payments: member 15555550101 must be a number"),
        (
            {**GOOD, "escalation": [{"notify": []}]},
            "teams: payments: escalation step 1: 'notify' needs at least one",
        ),
    ],
)
def test_a_team_with_a_mistake_is_refused_in_one_line_naming_the_team_and_the_key(team, message):
    with pytest.raises(ConfigError) as raised:
        teams.parse_teams({"payments": team})
    assert str(raised.value).startswith(message) and "\n" not in str(raised.value)


def test_the_file_accepts_a_teams_section(tmp_path):
    from config import load_file

    path = tmp_path / "operator.yml"
    path.write_text(
        "teams:\n  payments:\n    members: ['+15555550101']\n    rotation: {every: 1w, start: 2026-12-07T09:00:00+01:00}\n"
    )
    [team] = teams.parse_teams(load_file(str(path))["teams"]).values()
    assert team.rotation is not None and team.rotation.days == 7
