"""Registry-wide checks: every name a user may type is walked through the real path, so a name
added to one list and not the other fails here the day it is added."""

from __future__ import annotations

import logging
import re
from dataclasses import replace

import pytest
from sqlalchemy import select

import commands  # noqa: F401 - registers the real commands
from app import create_app
from command_processor import CommandProcessor, registry
from config import ConfigError
from conversation import composer
from conversation.vocabulary import INTENTS, OPT_IN, OPT_OUT, RESERVED
from inbound import audit
from incidents import rulefile
from incidents.rules import ALIASES
from monitors import MONITORS
from services import build_services
from tests.support.paths import REPO
from tests.support.phones import ADMIN, Phone


def every_monitor_configured(settings, tmp_path):
    """Settings under which every registered monitor is built (nothing is contacted to build one)."""
    log = tmp_path / "app.log"
    log.write_text("")
    return replace(
        settings,
        prometheus_url="http://127.0.0.1:9",
        monitor_db_url=f"sqlite:///{tmp_path}/monitored.db",
        newrelic_api_key="NRAK-test",
        newrelic_account_id="1",
        custom_api_url="http://127.0.0.1:9",
        loki_url="http://127.0.0.1:9",
        log_files=str(log),
    )


def rule_naming(monitor: str) -> dict:
    return {"rules": [{"name": "r", "monitor": monitor, "query": "q", "threshold": 1}]}


def test_every_registered_monitor_is_built_when_configured(settings, tmp_path):
    services = build_services(every_monitor_configured(settings, tmp_path))
    try:
        assert list(services.monitors) == list(MONITORS)
    finally:
        services.close()


@pytest.mark.parametrize("name", [*MONITORS, *ALIASES])
def test_a_rule_may_name_every_registered_monitor_and_alias_that_gives_numbers(settings, tmp_path, name):
    configured = every_monitor_configured(settings, tmp_path)
    services = build_services(replace(configured, file=rule_naming(name)))
    registered = ALIASES.get(name, name)
    try:
        if not MONITORS[registered][0].gives_values():
            with pytest.raises(ConfigError, match=f"monitor '{registered}' gives no number to compare"):
                rulefile.load_rules(services)
            return
        [rule] = rulefile.load_rules(services)
    finally:
        services.close()
    assert rule.monitor == registered


@pytest.mark.parametrize("alias", ALIASES)
def test_every_alias_names_a_registered_monitor(alias):
    assert ALIASES[alias] in MONITORS


def test_an_unknown_monitor_is_refused_naming_the_configured_ones(settings):
    services = build_services(replace(settings, file=rule_naming("graphite")))
    try:
        with pytest.raises(ConfigError, match="unknown monitor 'graphite'; configured: system"):
            rulefile.load_rules(services)
    finally:
        services.close()


@pytest.mark.parametrize("word", sorted(RESERVED))
def test_every_twilio_keyword_is_audited_as_what_twilio_does_with_it(phone: Phone, services, caplog, word):
    caplog.set_level(logging.ERROR)
    for typed in (word, word.upper() + "!"):
        assert phone.text(typed) is None  # Twilio answers these itself
    with services.engine.connect() as conn:
        commands = conn.scalars(select(audit.messages.c.command).where(audit.messages.c.phone == ADMIN)).all()
    expected = "optout" if word in OPT_OUT else "optin"
    assert commands == [expected, expected]
    opted_out_logged = [r for r in caplog.records if "opted out at Twilio" in r.getMessage()]
    assert len(opted_out_logged) == (2 if word in OPT_OUT else 0)


def test_twilio_keywords_are_exactly_its_default_opt_out_and_opt_in_words():
    # Twilio's Advanced Opt-Out defaults for long codes (its docs list these words).
    assert OPT_OUT == {"stop", "stopall", "unsubscribe", "cancel", "end", "quit", "optout", "revoke"}
    assert OPT_IN == {"start", "unstop", "optin"}
    assert not OPT_OUT & OPT_IN


# A fallback command's words ("fine", "good") may also be another command's keyword by design.
WORDS = sorted(w for w, n in registry.words.items() if not registry.commands[n].fallback)


@pytest.mark.parametrize("word", WORDS)
def test_every_command_name_and_alias_resolves_to_its_command(services, word):
    cmd, _, _ = CommandProcessor(services).resolve(word)
    assert cmd is not None and cmd.name == registry.words[word]


@pytest.mark.parametrize("name", [c.name for c in registry.visible()])
def test_every_command_is_listed_by_help_explained_by_help_name_and_documented(phone: Phone, name):
    listed = phone.text("help")
    assert re.search(rf"\b{name}\b", listed, re.IGNORECASE), listed
    assert phone.text(f"help {name}") == registry.commands[name].help
    reference = (REPO / "docs" / "sms-commands.md").read_text()
    assert f"| `{name}" in reference, f"the SMS command reference's tables lack {name}"


def test_help_names_every_command_in_one_sms_segment(phone: Phone):
    listed = phone.text("help")
    assert composer.segments(listed) == 1 and composer.is_gsm7(listed), f"{len(listed)} characters: {listed}"
    names = set(re.findall(r"[a-z]+", listed.split(":", 1)[1].split(".", 1)[0]))
    assert names == {c.name for c in registry.visible() if c.name != "help"}


def test_every_word_that_handles_an_alert_runs_and_answers_past_the_query_limit(settings):
    app = create_app(replace(settings, rate_limit="1 per hour"))
    try:
        phone = Phone(app.test_client(), ADMIN)
        assert phone.text("help").startswith("Commands:")
        assert phone.text("help").startswith("Query limit reached")
        handling = [c for c in registry.commands.values() if c.role != "viewer" or c.name in ("yes", "no")]
        assert {"ack", "snooze", "silence", "unsilence", "resolve", "yes", "no"} <= {c.name for c in handling}
        words = [w for c in handling for w in (c.name, *c.aliases)]
        words += [phrase for phrase, name in INTENTS.items() if name in {c.name for c in handling}]
        for cmd in handling:
            assert cmd.unlimited, f"{cmd.name} handles alerts: register it with unlimited=True"
        for word in words:
            assert phone.text(f"{word} 1") or phone.text(word), word
        assert phone.text("status") is None, "queries stay limited"
    finally:
        app.extensions["operator"].close()
