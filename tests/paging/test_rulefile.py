"""The rules file as the worker reads it: every kind of bad file keeps the last good rules."""

from __future__ import annotations

import os

import pytest
from sqlalchemy import select

from incidents.rulefile import RuleFile
from outbox import queue
from tests.support.apps import app_with, from_file, with_settings
from tests.support.phones import ADMIN, RESPONDER

GOOD = """rules:
  - name: busy
    monitor: system
    query: cpu
    threshold: 90
"""


def notices(services) -> list[tuple[str, str]]:
    o = queue.outbox.c
    with services.engine.connect() as conn:
        return [
            (r.to_number, r.body) for r in conn.execute(select(o.to_number, o.body).where(o.kind == "notice"))
        ]


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "operator.yml"
    path.write_text(GOOD)
    return path


@pytest.fixture
def services(settings, config):
    with app_with(with_settings(settings, **from_file(config))) as app:
        yield app.extensions["operator"]


def rewrite(path, text: str | bytes) -> None:
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    later = os.stat(path).st_mtime_ns + 1_000_000_000
    os.utime(path, ns=(later, later))


@pytest.mark.parametrize(
    ("bad", "problem"),
    [
        (GOOD.replace("threshold: 90", 'op: "=>"\n    threshold: 90'), "rule 'busy': 'op' must be one of"),
        (GOOD.replace("query: cpu", 'query: "cpu'), "is not valid YAML"),
        ("rules: {busy: 1}\n", "rules: must be a list of rules"),
        (
            GOOD + "  - name: busy\n    monitor: system\n    query: cpu\n    threshold: 1\n",
            "used by another rule",
        ),
        (GOOD + "alerts: []\n", "unknown section(s) alerts"),
        (GOOD.replace("monitor: system", "monitor: prometheus"), "monitor 'prometheus' is not configured"),
        (
            GOOD.replace("threshold: 90", "threshold: 90\n    no_data: maybe"),
            "'no_data' must be ok, alert or keep",
        ),
        (b"rules: \xff\xfe\n", "not UTF-8 text"),
        ("- rules\n", "must be a mapping of sections"),
        (None, "cannot read"),
    ],
)
def test_a_bad_file_keeps_the_last_good_rules_and_tells_only_the_admins_once(services, config, bad, problem):
    rule_file = RuleFile(services)
    assert [r.name for r in rule_file.load().rules] == ["busy"]
    if bad is None:
        config.unlink()
    else:
        rewrite(config, bad)
    assert rule_file.changed()
    for _ in range(3):
        loaded = rule_file.load()
        assert [r.name for r in loaded.rules] == ["busy"] and problem in loaded.problem
    assert not rule_file.changed()
    [(to, body)] = notices(services)
    assert to == ADMIN and body.startswith("Rules file not loaded, the last good 1 rule(s) still run. ")
    assert "operator.yml" in body
    assert str(config.parent) not in body, "the file's name, not its path"
    assert RESPONDER not in [n for n, _ in notices(services)]


def test_the_same_mistake_after_a_fix_is_told_again(services, config):
    rule_file = RuleFile(services)
    for text in (GOOD.replace("90", "ninety"), GOOD, GOOD.replace("90", "ninety")):
        rewrite(config, text)
        rule_file.load()
    assert len(notices(services)) == 2


def test_a_touch_without_a_change_is_no_reload(services, config, caplog):
    rule_file = RuleFile(services)
    rule_file.load()
    rewrite(config, GOOD)
    assert rule_file.changed()
    caplog.clear()
    assert [r.name for r in rule_file.load().rules] == ["busy"]
    assert "rules loaded" not in caplog.text
