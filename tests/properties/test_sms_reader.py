"""The SMS reader's public door: any text gives a reading (a command or none, with its reason),
never an exception."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from command_processor import CommandProcessor
from conversation.resolver import Reading
from tests.properties.strategies import QUICK, texts

COMMAND_WORDS = ["ack", "status", "help", "alerts", "maintenance", "oncall", "snooze", "resolve", "?", "#12",
                 "2h", "don't", "should", "yes", "no", "more", "\"quoted\"", "cpu", "10m", "take"]  # fmt: skip
sms = texts | st.lists(st.sampled_from(COMMAND_WORDS) | texts, max_size=8).map(" ".join)


@pytest.fixture
def processor(services) -> CommandProcessor:
    return CommandProcessor(services)


@QUICK
@given(text=sms)
def test_any_text_gives_a_reading_and_never_an_exception(processor, text):
    reading = processor.interpret(text)
    assert isinstance(reading, Reading)
    assert reading.name is None or reading.name in processor.registry.commands
    command, args, rest = processor.resolve(text)
    assert all(isinstance(arg, str) for arg in args) and isinstance(rest, str)
    assert sum(map(len, args)) <= 4 * len(text) + 64
