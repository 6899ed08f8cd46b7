"""The rules file is reloaded by a running worker, and a bad one stops nothing.

Real `flask --app app worker` processes (and the production gunicorn) with the Twilio fake: a
change to the file or a SIGHUP reloads it; a mistake keeps the last good rules, is logged and
texted to the admins once, even across a restart; the web service answers texts all along.
"""

from __future__ import annotations

import os
import signal
import time

import pytest
from sqlalchemy import select

import alerting
from core import db
from tests.support.fakes.twilio_api import FakeTwilio
from tests.support.live_server import SignedClient, base_env, gunicorn
from tests.support.phones import ADMIN, RESPONDER, TOKEN
from tests.support.workers import start_worker, stop_worker, wait_for

pytestmark = pytest.mark.slow
SID = "AC" + "1" * 32
RULE = """
  - name: {name}
    monitor: system
    query: cpu
    op: "{op}"
    threshold: 0
    recipients: ["{to}"]
    message: "{name} {{value}}"
"""
TYPO = 'op: "=>" is not an operator'


def rules(*names: str, op: str = ">=") -> str:
    return "rules:\n" + "".join(RULE.format(name=n, op=op, to=RESPONDER) for n in names)


@pytest.fixture
def fake():
    fake = FakeTwilio(SID, TOKEN).start()
    yield fake
    fake.stop()


def environment(tmp_path, fake) -> dict[str, str]:
    env = base_env(tmp_path)
    env.update(
        TWILIO_AUTH_TOKEN=TOKEN,
        TWILIO_ACCOUNT_SID=SID,
        TWILIO_FROM_NUMBER="+15005550006",
        SMS_BACKEND="twilio",
        TWILIO_API_URL=fake.url,
        AUTHORIZED_NUMBERS=f"{ADMIN}:admin,{RESPONDER}:responder",
        ALERT_INTERVAL="1",
        ALERT_LIMITS="100 per minute",
        SMS_RATE="50",
        OPERATOR_CONFIG=str(tmp_path / "operator.yml"),
    )
    return env


def evaluated(tmp_path) -> dict[str, float]:
    """rule -> when it was last evaluated."""
    engine = db.make_engine(f"sqlite:///{tmp_path}/operator.db")
    try:
        with engine.connect() as conn:
            t = alerting.rule_states.c
            return dict(conn.execute(select(t.rule, t.evaluated_at)).all())
    except Exception:  # noqa: BLE001 - the worker has not made the tables yet
        return {}
    finally:
        engine.dispose()


def still_evaluating(tmp_path, name: str) -> bool:
    before = evaluated(tmp_path).get(name, 0)
    return bool(wait_for(lambda: evaluated(tmp_path).get(name, 0) > before, f"{name} to be evaluated"))


def texts_to(fake, number: str) -> list[str]:
    with fake.lock:
        return [m.body for m in fake.messages if m.to == number]


def write(path, text: str) -> None:
    """Replace the file the way editors do, with a new modification time even within one tick."""
    path.write_text(text)
    stamp = time.time_ns() + 1_000_000_000
    os.utime(path, ns=(stamp, stamp))


def test_a_typo_at_start_keeps_the_worker_running_texts_the_admins_once_and_a_fix_is_picked_up(
    tmp_path, fake
):
    config = tmp_path / "operator.yml"
    config.write_text(rules("host_busy", op="=>"))
    worker = start_worker(tmp_path, environment(tmp_path, fake))
    try:
        notice = wait_for(lambda: texts_to(fake, ADMIN), "the admins' notice")
        assert notice == [
            "Rules file not loaded, no rules evaluated. operator.yml: rule 'host_busy': 'op' must be one of "
            "> >= < <= == !=, not '=>'"
        ]
        assert worker.poll() is None, "a bad rules file never stops the worker (or make run with it)"
        assert texts_to(fake, RESPONDER) == []
        write(config, rules("host_busy"))
        page = wait_for(lambda: texts_to(fake, RESPONDER), "the fixed rule's page")
        assert page[0].startswith("ALERT #1: host_busy ")
        time.sleep(2)
        assert len(texts_to(fake, ADMIN)) == 1, "told once"
    finally:
        assert stop_worker(worker) == 0
    log = (tmp_path / "worker.log").read_text()
    assert "rules file not loaded: rules: rule 'host_busy': 'op' must be one of" in log
    assert "rules loaded from" in log


def test_a_bad_edit_keeps_the_last_good_rules_even_across_a_restart_and_sighup_reloads(tmp_path, fake):
    config = tmp_path / "operator.yml"
    config.write_text(rules("first"))
    env = environment(tmp_path, fake)
    worker = start_worker(tmp_path, env)
    try:
        wait_for(lambda: "first" in evaluated(tmp_path), "the first rule")
        write(config, rules("first", "second").replace('op: ">="', 'op: ">=', 1))  # an unclosed quote
        [notice] = wait_for(lambda: texts_to(fake, ADMIN), "the admins' notice")
        assert notice.startswith(
            "Rules file not loaded, the last good 1 rule(s) still run. operator.yml is not "
            "valid YAML: while parsing a block mapping (line 3)"
        )
        assert still_evaluating(tmp_path, "first")
        assert worker.poll() is None
    finally:
        assert stop_worker(worker) == 0
    restarted = start_worker(tmp_path, env)
    try:
        assert still_evaluating(tmp_path, "first"), "a restart with the bad file runs the last good rules"
        time.sleep(1)
        assert len(texts_to(fake, ADMIN)) == 1, "the same mistake is not texted again after a restart"
        # Written within the same second and size: only a SIGHUP says it changed.
        config.write_text(rules("first", "second"))
        restarted.send_signal(signal.SIGHUP)
        wait_for(lambda: "second" in evaluated(tmp_path), "the second rule after SIGHUP")
    finally:
        assert stop_worker(restarted) == 0


def test_the_web_service_answers_texts_while_the_rules_file_is_broken(tmp_path, fake):
    (tmp_path / "operator.yml").write_text("queries:\n  answer: vector(42)\n" + rules("host_busy", op='=>"'))
    env = environment(tmp_path, fake)
    worker = start_worker(tmp_path, env)
    try:
        with gunicorn(tmp_path, env, workers=1) as url:
            reply = SignedClient(url, TOKEN).post(ADMIN, "help")
            assert reply.status_code == 200 and "<Message>" in reply.text
        assert worker.poll() is None
        [notice] = wait_for(lambda: texts_to(fake, ADMIN), "the admins' notice")
        assert notice.startswith("Rules file not loaded, no rules evaluated. operator.yml is not valid YAML")
    finally:
        assert stop_worker(worker) == 0
