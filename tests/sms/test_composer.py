"""composer.py: GSM-7 flattening, segment arithmetic and pages that fit the budget."""

from __future__ import annotations

import random

import pytest

from conversation import composer
from conversation.composer import (
    PAGE_BREAK,
    TWILIO_MAX_CHARS,
    fit,
    hint,
    is_gsm7,
    length_units,
    normalize,
    segments,
    split,
)


@pytest.mark.parametrize(
    "raw, flat",
    [
        ("it’s “fine”", 'it\'s "fine"'),
        ("‘single’ ‚low‛", "'single' 'low'"),
        ("a – b — c ― d − e", "a - b - c - d - e"),
        ("cpu\u00a090%", "cpu 90%"),
        ("thin\u2009space\u202fnarrow", "thin space narrow"),
        ("wait…", "wait..."),
        ("zero\u200bwidth\ufeff", "zerowidth"),
        ("soft\u00adhyphen", "softhyphen"),
        ("tab\there", "tab here"),
        ("crlf\r\nline", "crlf\nline"),
        ("bell\x07nul\x00esc\x1b", "bellnulesc"),
        ("→ ok ✓ ≥ 5", "-> ok ok >= 5"),
        ("café naïve Ångström", "café naive Ångström"),
        ("Łódź", "?odz"),
        ("ça Ça", "ca Ça"),
        ("£5 €5 ¥5 $5 @ § ¿¡", "£5 €5 ¥5 $5 @ § ¿¡"),
        ("ΔΦΓΛΩΠΨΣΘΞ", "ΔΦΓΛΩΠΨΣΘΞ"),
        ("中文", "??"),
        ("disk 🔥 full", "disk  full"),
        ("flag 🇺🇸 x", "flag  x"),
        ("👍🏽", ""),
        ("", ""),
    ],
)
def test_it_flattens_text_to_gsm7(raw, flat):
    assert normalize(raw) == flat
    assert is_gsm7(normalize(raw))


def test_it_keeps_emoji_only_when_allowed():
    assert normalize("disk 🔥", emoji=True) == "disk 🔥"
    assert normalize("disk 🔥", emoji=False) == "disk "
    # Typography is flattened either way: emoji are the only UCS-2 characters worth paying for.
    assert normalize("“ok” — 🔥", emoji=True) == '"ok" - 🔥'


@pytest.mark.parametrize(
    "text, units, count",
    [
        ("", 0, 0),
        ("a", 1, 1),
        ("a" * 160, 160, 1),
        ("a" * 161, 161, 2),
        ("a" * 306, 306, 2),
        ("a" * 307, 307, 3),
        ("a" * 459, 459, 3),
        ("a" * 460, 460, 4),
        ("€" * 80, 160, 1),
        ("€" * 81, 162, 2),
        ("a" * 159 + "[", 161, 2),
        ("{}" * 40, 160, 1),
        ("a" * 158 + "^", 160, 1),
        ("\\|~", 6, 1),
        ("é" * 160, 160, 1),
        ("ш" * 70, 70, 1),
        ("ш" * 71, 71, 2),
        ("ш" * 134, 134, 2),
        ("ш" * 135, 135, 3),
        ("🔥" * 35, 70, 1),
        ("🔥" * 36, 72, 2),
        ("a" * 69 + "🔥", 71, 2),
        ("a" * 68 + "🔥", 70, 1),
    ],
)
def test_it_counts_segments_like_twilio(text, units, count):
    assert length_units(text) == units
    assert segments(text) == count


@pytest.mark.parametrize("length", [1, 100, 159, 160])
def test_a_text_that_fits_is_one_page_unchanged(length):
    text = "x" * length
    assert split(text) == [text]


@pytest.mark.parametrize("max_segments", [1, 2, 3, 10])
@pytest.mark.parametrize("length", [161, 200, 306, 307, 320, 459, 460, 1000, 1600, 5000])
@pytest.mark.parametrize("alphabet", ["words", "extension", "unicode-emoji", "no-spaces"])
def test_every_page_fits_the_budget_and_nothing_is_lost(max_segments, length, alphabet):
    rng = random.Random(f"{max_segments}-{length}-{alphabet}")
    emoji = alphabet == "unicode-emoji"
    pieces = {
        "words": ["cpu", "95%", "disk", "ok", "node-3", "down", "|", "\n"],
        "extension": ["{x}", "[y]", "€", "a^b", "~", "ok"],
        "unicode-emoji": ["🔥", "ok", "db", "✓"],
        "no-spaces": ["abcdefghij"],
    }[alphabet]
    joiner = "" if alphabet == "no-spaces" else " "
    text = normalize(joiner.join(rng.choice(pieces) for _ in range(length)), emoji=emoji)[:length].strip()
    pages = split(text, max_segments, emoji)
    assert all(segments(page) <= max_segments for page in pages)
    assert all(len(page) <= TWILIO_MAX_CHARS for page in pages)
    if len(pages) > 1:
        total = len(pages)
        for i, page in enumerate(pages[:-1], start=1):
            assert page.endswith(f"... ({i}/{total}) Reply MORE")
        assert pages[-1].endswith(f" ({total}/{total})")
        bodies = [p.rsplit("... (", 1)[0] for p in pages[:-1]] + [pages[-1].rsplit(" (", 1)[0]]
        # Only the whitespace and separators at the cuts may go.
        squash = str.maketrans("", "", " \n|")
        assert "".join(bodies).translate(squash) == text.translate(squash)
    else:
        assert pages == [text]


def test_a_long_reply_is_cut_at_a_word_boundary():
    text = " ".join(f"word{i}" for i in range(60))
    first = split(text)[0].rsplit("... (", 1)[0]
    assert first.split()[-1] in text.split()


def test_the_page_count_grows_to_two_digits_without_overflowing():
    pages = split("y" * 2000)
    assert len(pages) >= 10
    assert all(segments(p) == 1 for p in pages)
    assert pages[9].endswith(f"... (10/{len(pages)}) Reply MORE")


def test_fit_returns_one_page_without_a_more_prompt():
    text = fit("z " * 200)
    assert segments(text) == 1 and text.endswith("...") and "MORE" not in text
    assert fit("short") == "short"


@pytest.mark.parametrize(
    "text",
    [
        "Disk almost full on db-1, see https://grafana.example.com/d/abcdefghij/node-exporter-full?orgId=1&"
        "var-instance=db-1:9100&from=now-6h&to=now&viewPanel=152 and clean up",
        "Replication lag on replica-2 is 31m: " + "x" * 150,
        " ".join(f"word{i}" * (i % 7 + 1) for i in range(60)),
    ],
)
def test_a_text_cut_to_fit_one_message_ends_on_a_whole_word(text):
    cut = fit(text)
    assert segments(cut) == 1 and cut.endswith("...")
    shown = cut.removesuffix("...")
    assert text.startswith(shown) and text[len(shown)] in " .:,"


@pytest.mark.parametrize("max_segments", [1, 2])
@pytest.mark.parametrize("breaks", [False, True])
def test_a_hint_ends_the_first_part_of_a_split_reply_and_stays_in_place_when_it_fits(max_segments, breaks):
    listing = ", ".join(f"{i}/s service-{i}" for i in range(80))
    text = f"errors: 9/s a +79 more{PAGE_BREAK if breaks else ' '}{listing}" + hint(
        " (Set LOKI_URL to search.)"
    )
    pages = split(text, max_segments)
    assert len(pages) > 1 and all(segments(p) <= max_segments for p in pages)
    assert pages[0].endswith(f"(Set LOKI_URL to search.)... (1/{len(pages)}) Reply MORE")
    assert all("LOKI_URL" not in p for p in pages[1:])
    assert fit(text, max_segments).endswith("... (Set LOKI_URL to search.)")
    assert split("errors: no data." + hint(" (Set LOKI_URL to search.)") + " This host: 3%.") == [
        "errors: no data. (Set LOKI_URL to search.) This host: 3%."
    ]


def test_a_page_marks_itself_as_already_cut():
    assert isinstance(composer.Part("x"), str)


def test_a_page_break_starts_a_more_part_even_when_everything_would_fit():
    parts = split(f"cpu: 91% a, 55% b, 40% c +2 more{PAGE_BREAK}cpu 4-5 of 5: 7% d, 1% e")
    assert parts == [
        "cpu: 91% a, 55% b, 40% c +2 more... (1/2) Reply MORE",
        "cpu 4-5 of 5: 7% d, 1% e (2/2)",
    ]
