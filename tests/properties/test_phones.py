"""Phone numbers from the environment and the config file, and the masking of numbers in text:
a number is E.164 in ASCII or a ConfigError, and no full number survives masking."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from config import E164, ConfigError, _authorized, _phone, _phones
from security import mask, mask_numbers
from tests.properties.strategies import QUICK, texts

TAILS = st.sampled_from(["", "\n", " ", "\x00", ":admin", ":viewer", ":boss"])
numbers = st.builds(
    lambda plus, digits, tail: plus + digits + tail,
    st.sampled_from(["+", "", "++"]),
    st.text(st.sampled_from("0123456789٠١٢٣٤٥٦٧٨٩ -.()"), max_size=20),
    TAILS,
) | st.builds(
    lambda digits, tail: "+1" + digits + tail,
    st.text(st.sampled_from("0123456789٣"), min_size=6, max_size=13),
    TAILS,
)
ROLES = st.sampled_from(["", ":admin", ":responder", ":viewer", ":owner"])


@QUICK
@given(value=numbers | texts)
def test_a_phone_setting_is_ascii_e164_or_a_config_error(value):
    try:
        phone = _phone("PAGER_NUMBERS", value)
    except ConfigError as exc:
        assert "\n" not in str(exc)
        return
    assert phone == value and re.fullmatch(r"\+[1-9][0-9]{6,14}", phone, re.ASCII)
    assert E164.match(phone)


@QUICK
@given(parts=st.lists(st.builds(lambda n, r: n + r, numbers | texts, ROLES), max_size=4))
def test_number_lists_and_roles_parse_or_raise_a_config_error(parts):
    value = ",".join(parts)
    for parse in (lambda: _phones("PAGER_NUMBERS", value), lambda: tuple(_authorized(value))):
        try:
            found = parse()
        except ConfigError:
            continue
        assert all(re.fullmatch(r"\+[1-9][0-9]{6,14}", phone, re.ASCII) for phone in found)


@QUICK
@given(phone=texts | numbers)
def test_a_masked_number_is_short_and_hides_the_middle(phone):
    masked = mask(phone)
    assert len(masked) <= 12 and "***" in masked


@QUICK
@given(text=st.lists(numbers | texts, max_size=6).map(" ".join))
def test_no_run_of_eight_digits_survives_masking(text):
    masked = mask_numbers(text)
    assert not re.search(r"[0-9]{8}", masked)
    assert len(masked) <= 2 * len(text) + 12
