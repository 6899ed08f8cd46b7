"""A question or a negation never changes state, for every registered command, whatever role it is
registered with: the walk below sends each command's acting words inside questions and negations and
checks that the store's state (alerts, their timeline, maintenance windows, overrides, ...) is as it
was. The message log, the outbox and the pending "did you mean" question may change: asking back is
the expected answer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import MetaData, select

from command_processor import registry
from tests.support.alerts import WEBHOOK_TOKEN, fire
from tests.support.apps import app_with, with_settings
from tests.support.oncall import CAROL, payments_and_infra
from tests.support.phones import ADMIN, Phone

# What a text may write without changing what Operator does next.
RECORDS = {
    "messages",
    "outbox",
    "continuations",
    "confirmations",
    "rate_limits",
    "pacing",
    "worker_heartbeats",
    "monitor_cache",
    "alembic_version",
}
QUESTIONS = (
    "should we {} {}?",
    "can you {} {}?",
    "should I {} {}",
    "is it ok to {} {}?",
    "whether to {} {}",
    "{} {}?",
)
NEGATIONS = ("don't {} {}", "do not {} {}", "never {} {}", "dont {} {} please")
# Words that make some command act: ids, durations, everything, ending, taking and giving on-call.
ACTING = ("1", "1 2h", "2h", "all 30m", "off all", "off 1", "take 4h payments", f"give {CAROL} 2h payments")


@pytest.fixture(scope="module")
def walk(tmp_path_factory):
    """An app with teams, one firing alert (#1) and one maintenance window, and its state."""
    tmp = tmp_path_factory.mktemp("questions")
    start = (datetime.now(UTC) - timedelta(hours=1)).replace(microsecond=0).isoformat()
    settings = with_settings(
        _settings(tmp),
        file=payments_and_infra(start=start),
        alertmanager_token=WEBHOOK_TOKEN,
        rate_limit="100000 per minute",
    )
    with app_with(settings) as app:
        client = app.test_client()
        fire(client, "DiskFull")
        phone = Phone(client, ADMIN)
        assert phone.text("maintenance 3h OtherAlert").startswith("Maintenance #1 ")
        yield phone, app.extensions["operator"].engine


def _settings(tmp):
    from config import Settings
    from tests.support.phones import RESPONDER, TOKEN, VIEWER

    return Settings(
        twilio_auth_token=TOKEN,
        public_url="http://localhost",
        authorized={ADMIN: "admin", RESPONDER: "responder", VIEWER: "viewer"},
        database_url=f"sqlite:///{tmp}/operator.db",
        log_dir=str(tmp / "logs"),
        reply_deadline=5.0,
    )


def state(engine) -> dict[str, list]:
    meta = MetaData()
    meta.reflect(engine)  # every table, those added later included
    with engine.connect() as conn:
        return {
            name: sorted(map(tuple, conn.execute(select(table))), key=repr)
            for name, table in meta.tables.items()
            if name not in RECORDS
        }


def words(name: str) -> list[str]:
    command = registry.commands[name]
    return [w for w in (name, *command.aliases) if w.replace("'", "").isalpha()][:3]


@pytest.mark.parametrize("name", sorted(registry.commands))
def test_no_question_or_negation_changes_state_for_any_command(walk, name):
    phone, engine = walk
    before = state(engine)
    for word in words(name):
        for form in QUESTIONS + NEGATIONS:
            sent = [form.format(word, acting) for acting in ACTING]
            for text in sent:
                phone.text(text)
            after = state(engine)
            changed = [table for table in before if before[table] != after[table]]
            assert not changed, f"one of {sent} changed {changed}"


@pytest.mark.parametrize(
    "text",
    [
        "should we start maintenance 2h?",
        "can you do maintenance 4h?",
        f"don't give oncall to {CAROL} for 2h payments",
        "don't start maintenance for 2h",
        "should I ack 1",
        "whether to snooze all 30m",
    ],
)
def test_the_reported_questions_and_negations_change_nothing(walk, text):
    phone, engine = walk
    before = state(engine)
    reply = phone.text(text)
    assert state(engine) == before, reply


def test_a_question_about_an_action_is_asked_back_and_yes_runs_it(walk):
    phone, engine = walk
    reply = phone.text("should we start maintenance 2h?")
    assert reply == "Did you mean 'maintenance 2h'? Reply YES to run it."
    assert phone.text("yes").startswith("Maintenance #2 for 2h")
    assert phone.text("maintenance off 2").startswith("Ended maintenance #2")


def test_a_question_about_giving_on_call_is_asked_back_with_the_number_and_team(walk):
    phone, engine = walk
    reply = phone.text(f"should I give oncall to {CAROL} for 2h payments?")
    assert reply == f"Did you mean 'oncall give {CAROL} 2h payments'? Reply YES to run it."
    assert phone.text("no") is not None


def test_the_word_that_is_the_action_is_no_negation(walk):
    phone, engine = walk
    assert phone.text("maintenance 1h Another").startswith("Maintenance #")
    assert phone.text("cancel maintenance all").startswith("Ended maintenance")
    assert phone.text("maintenance 3h OtherAlert").startswith("Maintenance #")
