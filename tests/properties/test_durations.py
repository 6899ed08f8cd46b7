"""Durations as people and config files write them: seconds or ValueError, and every number of
seconds has a short human form."""

from __future__ import annotations

import math

from hypothesis import example, given
from hypothesis import strategies as st

from core.timeutil import humanize, parse_duration
from tests.properties.strategies import QUICK, texts

UNITS = ["", "s", "sec", "m", "min", "minutes", "h", "hours", "d", "days", "w", "weeks", "x"]
typed = st.builds(
    lambda number, space, unit: f"{number}{space}{unit}",
    st.text(st.sampled_from("0123456789."), min_size=1, max_size=400),
    st.sampled_from(["", " ", "\n", "\t"]),
    st.sampled_from(UNITS),
)


@QUICK
@given(text=texts | typed)
@example(text="9" * 400)  # a float too large for a float: inf
@example(text="9" * 400 + "w")
def test_any_text_is_a_finite_duration_or_a_value_error(text):
    try:
        seconds = parse_duration(text)
    except ValueError:
        return
    assert math.isfinite(seconds) and seconds >= 0


@QUICK
@given(seconds=st.floats(allow_nan=True, allow_infinity=True))
def test_any_number_of_seconds_reads_in_a_few_characters(seconds):
    shown = humanize(seconds)
    assert isinstance(shown, str) and 1 <= len(shown) <= 12
