"""Rules from operator.yml: the documented form works, a mistake names the rule and the problem."""

from __future__ import annotations

import pytest
import yaml

from config import ConfigError
from incidents.rules import Num, parse_rules
from monitors import MONITORS
from tests.support.apps import with_settings
from tests.support.phones import ADMIN, RESPONDER

ISSUE_EXAMPLE = """
rules:
  - name: high_cpu
    monitor: prometheus
    query: cpu              # a named query or raw PromQL
    op: ">"                 # > >= < <= == !=
    threshold: 80
    for: 5m
    repeat: 30m
    severity: page
    recipients: ["+15550100"]
    message: "CPU {value}% over {threshold}% for {duration}"
"""


def test_the_documented_rule_form_parses(settings):
    [rule] = parse_rules(yaml.safe_load(ISSUE_EXAMPLE)["rules"], settings, ["system", "prometheus"])
    assert (rule.name, rule.monitor, rule.query, rule.op, rule.threshold) == (
        "high_cpu",
        "prometheus",
        "cpu",
        ">",
        80,
    )
    assert (rule.for_, rule.repeat, rule.severity, rule.recipients) == (300, 1800, "page", ("+15550100",))
    assert rule.render(91.26, "5m") == "CPU 91.3% over 80% for 5m"
    assert rule.breached(80.5) and not rule.breached(80)


def test_recipients_default_to_alert_recipients_then_the_authorized_responders_and_admins(settings):
    rule = {"name": "r", "monitor": "sys", "query": "cpu", "threshold": 1}
    assert parse_rules([rule], settings, ["system"])[0].recipients == (ADMIN, RESPONDER)
    chosen = with_settings(settings, alert_recipients=(ADMIN,))
    assert parse_rules([rule], chosen, ["system"])[0].recipients == (ADMIN,)


BASE = {"name": "db_conn", "monitor": "system", "query": "cpu", "threshold": 90}


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"op": "=>"}, "'op' must be one of > >= < <= == !="),
        ({"threshold": "ninety"}, "'threshold' must be a number"),
        ({"threshold": None}, "'threshold' is required"),
        ({"for": "5 fortnights"}, "'for' must be a duration"),
        ({"repeat": -5}, "'repeat' must be a duration like 30s, 5m or 1h, not -5"),
        ({"monitor": "prometheus"}, "monitor 'prometheus' is not configured"),
        ({"monitor": "graphite"}, "unknown monitor 'graphite'"),
        ({"threshhold": 3}, "unknown key(s) threshhold"),
        ({"recipients": ["5550100"]}, "recipient '5550100' is not an E.164 number"),
        ({"recipients": []}, "no recipients"),
        ({"message": "CPU {valu}"}, "unknown field(s) {valu}"),
        ({"message": "CPU {value"}, "'message' is not a valid template"),
        ({"message": "{value:.2q}"}, "'message' is not a valid template"),
    ],
)
def test_a_mistake_names_the_rule_and_the_problem(settings, change, problem):
    with pytest.raises(ConfigError) as caught:
        parse_rules([{**BASE, **change}], settings, ["system"], MONITORS.keys() | {"prometheus"})
    assert str(caught.value).startswith("rules: rule 'db_conn': ")
    assert problem in str(caught.value)


@pytest.mark.parametrize(
    ("section", "problem"),
    [
        ({"name": "x"}, "rules: must be a list"),
        (["just text"], "rules: rule #1: must be a mapping"),
        ([{"monitor": "system"}], "rules: rule #1: 'name' is required"),
        ([BASE, BASE], "rules: rule 'db_conn': the name is used by another rule"),
    ],
)
def test_a_malformed_section_is_refused(settings, section, problem):
    with pytest.raises(ConfigError, match="^" + problem.replace("(", r"\(").replace(")", r"\)")):
        parse_rules(section, settings, ["system"])


def test_values_print_short_unless_the_template_asks_for_a_format():
    assert [str(Num(v)) for v in (91.2345, 1234.5, 0.012345, 80.0, 5.0)] == [
        "91.2",
        "1234",
        "0.0123",
        "80",
        "5",
    ]
    assert f"{Num(91.2345):.2f}" == "91.23"
