"""command_processor.py: forgiving word matching, the registry, roles and failures as replies."""

from __future__ import annotations

import pytest

import commands  # noqa: F401 - registers the real commands
from command_processor import CommandError, CommandProcessor, Registry
from conversation.vocabulary import RESERVED, tokens


@pytest.fixture
def processor(services) -> CommandProcessor:
    return CommandProcessor(services)


@pytest.mark.parametrize(
    "text, name",
    [
        ("status", "status"),
        ("STATUS", "status"),
        ("  Status  ", "status"),
        ("STATUS!", "status"),
        ("status?", "status"),
        ("Status.", "status"),
        ("status please", "status"),
        ("status pls!!", "status"),
        ("what's the status?", "status"),
        ("whats the status", "status"),
        ("Can you give me the status", "status"),
        ("¿status?", "status"),
        ("is everything ok?", "status"),
        ("Is everything OK?!", "status"),
        ("how's everything looking?", "status"),
        ("how are things", "status"),
        ("any problems?", "status"),
        ("anything wrong?", "status"),
        ("are we ok?", "status"),
        ("how's it going?", "status"),
        ("all good?", "status"),
        ("sitrep", "status"),
        ("st", "status"),
        ("help", "help"),
        ("HELP", "help"),
        ("?", "help"),
        ("??", "help"),
        (" ? ", "help"),
        ("commands", "help"),
        ("help me", "help"),
        ("help please", "help"),
        ("hi", "help"),
        ("Hello?", "help"),
        ("more", "more"),
        ("MORE", "more"),
        ("more please", "more"),
        ("tell me more", "more"),
        ("next", "more"),
    ],
)
def test_it_resolves_what_people_type(processor, text, name):
    command, _, _ = processor.resolve(text)
    assert command is not None and command.name == name


@pytest.mark.parametrize("text", ["", "   ", "!!!", "...", "please", "xyzzy", "qwertz"])
def test_it_resolves_nothing_from_noise(processor, text):
    assert processor.resolve(text)[0] is None


@pytest.mark.parametrize(
    "text, reply",
    [
        ("sta", "Unknown command 'sta'. Did you mean 'status'? Text HELP for the list."),
        ("Sttaaus!", "Unknown command 'sttaaus'. Did you mean 'status'? Text HELP for the list."),
        ("hlp", "Unknown command 'hlp'. Did you mean 'help'? Text HELP for the list."),
        ("xyzzy", "Unknown command 'xyzzy'. Text HELP for the list."),
        ("", "Empty message. Text HELP for the list of commands."),
    ],
)
def test_unknown_words_get_a_did_you_mean(processor, text, reply):
    outcome = processor.run(text, "+15555550100", "admin")
    assert outcome.outcome == "unknown"
    assert outcome.reply == reply


@pytest.mark.parametrize("text, name", [("staus", "status"), ("Stauts!", "status"), ("hepl", "help")])
def test_a_misspelling_with_one_clear_meaning_runs_that_command(processor, text, name):
    assert processor.run(text, "+15555550100", "admin").command == name


def test_an_unknown_word_is_cut_short_in_the_reply(processor):
    assert len(processor.run("x" * 500, "+15555550100", "admin").reply) < 80


def test_help_lists_the_commands_and_explains_one(processor):
    listing = processor.run("help", "+15555550100", "viewer").reply
    assert "status" in listing and "more" in listing and "help," not in listing
    assert processor.run("help status", "+15555550100", "viewer").reply.startswith("status")
    assert processor.run("help with status", "+15555550100", "viewer").reply.startswith("status")
    refusal = processor.run("help frobnicate", "+15555550100", "viewer")
    assert refusal.outcome == "error" and "No command 'frobnicate'" in refusal.reply


@pytest.mark.parametrize("word", sorted(RESERVED))
def test_twilio_keywords_cannot_become_commands(word):
    registry = Registry()
    with pytest.raises(ValueError, match="Twilio keyword"):
        registry.command(word)(lambda ctx: "x")
    with pytest.raises(ValueError, match="Twilio keyword"):
        registry.command("harmless", aliases=(word,))(lambda ctx: "x")


@pytest.mark.parametrize("word", sorted(RESERVED))
def test_no_registered_command_answers_a_twilio_keyword(processor, word):
    assert word not in processor.registry.words


def test_a_word_cannot_belong_to_two_commands():
    registry = Registry()
    registry.command("deploy", aliases=("d",))(lambda ctx: "x")
    with pytest.raises(ValueError, match="already belongs"):
        registry.command("diff", aliases=("d",))(lambda ctx: "y")


def _registry() -> Registry:
    registry = Registry()

    @registry.command("ack", role="responder")
    def ack(ctx):
        """ack <id>: acknowledge an alert."""
        if not ctx.args:
            raise CommandError("Which alert? Text ACK <id>.")
        return f"acked {ctx.args[0]} for {ctx.phone}"

    @registry.command("boom")
    def boom(ctx):
        """boom: always fails."""
        raise RuntimeError("token=secret +15555550100")

    @registry.command("metrics", keywords=lambda services: services["metric_names"])
    def metrics(ctx):
        """metrics <name>: one metric."""
        return f"metric {' '.join(ctx.args)}"

    return registry


def test_the_docstring_is_the_help_line():
    assert _registry().commands["ack"].help == "ack <id>: acknowledge an alert."


def test_a_command_needs_the_role_it_names():
    processor = CommandProcessor({"metric_names": []}, _registry())
    assert processor.run("ack 7", "+15555550102", "viewer").outcome == "forbidden"
    assert processor.run("ack 7", "+15555550101", "responder").reply == "acked 7 for +15555550101"


def test_a_command_error_is_the_reply(processor):
    outcome = CommandProcessor({"metric_names": []}, _registry()).run("ack", "+1", "admin")
    assert (outcome.outcome, outcome.reply) == ("error", "Which alert? Text ACK <id>.")


def test_an_unexpected_failure_becomes_a_short_generic_reply(caplog):
    outcome = CommandProcessor({"metric_names": []}, _registry()).run("boom", "+1", "admin")
    assert outcome.outcome == "error"
    assert outcome.reply == "'boom' failed inside Operator; the logs have details."
    assert "secret" not in outcome.reply
    assert any(r.exc_info for r in caplog.records)


def test_keywords_claimed_by_a_command_select_it_anywhere_in_a_sentence():
    processor = CommandProcessor({"metric_names": ["cpu", "latency"]}, _registry())
    command, args, _ = processor.resolve("how's the CPU looking?")
    assert command.name == "metrics" and args == ["cpu"]
    assert processor.run("what's the latency now", "+1", "admin").reply == "metric latency"


def test_a_command_word_outranks_a_keyword_later_in_the_sentence():
    processor = CommandProcessor({"metric_names": ["cpu"]}, _registry())
    assert processor.resolve("please ack 12 cpu")[0].name == "ack"


@pytest.mark.parametrize(
    "text, words",
    [
        ("  Hello,  World!  ", ["hello", "world"]),
        ("(status)", ["status"]),
        ("'quoted' \"double\"", ["quoted", "double"]),
        ("ack #12", ["ack", "#12"]),
        ("5m 2h", ["5m", "2h"]),
        ("!!! ???", []),
    ],
)
def test_tokens_drop_case_and_surrounding_punctuation(text, words):
    assert tokens(text) == words
