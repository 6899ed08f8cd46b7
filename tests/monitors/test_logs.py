from __future__ import annotations

import os
import re
import time
from datetime import UTC, datetime, timedelta

import pytest

from app import create_app
from monitors.logs import LogFilesMonitor, parse_search
from tests.support.apps import with_settings
from tests.support.phones import Phone


def _stamp(ago: float) -> str:
    return (datetime.now(UTC) - timedelta(seconds=ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def log_dir(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "app.log").write_text(
        f"{_stamp(7200)} ERROR payment declined order=1\n"
        f"{_stamp(600)} INFO payment ok order=2\n"
        f"{_stamp(300)} ERROR Payment gateway timeout order=3\n"
        f"{_stamp(30)} ERROR payment declined order=4\n"
    )
    old = logs / "old.log"
    old.write_text("ERROR payment declined order=99\n")
    week_ago = time.time() - 7 * 86400
    os.utime(old, (week_ago, week_ago))
    return logs


@pytest.fixture
def files_phone(log_dir, settings):
    app = create_app(with_settings(settings, log_files=f"{log_dir}/*.log"))
    yield Phone(app.test_client())
    app.extensions["operator"].close()


@pytest.mark.parametrize(
    "text, terms, seconds",
    [
        ("payment error", ["payment", "error"], 3600),
        ("payment error 30m", ["payment", "error"], 1800),
        ("timeout in the last 2 hours", ["timeout"], 7200),
        ("timeout last hour", ["timeout"], 3600),
        ('"card declined" 1d', ["card declined"], 86400),
        ("oom today", ["oom"], 86400),
        ("crash 90d", ["crash"], 7 * 86400),
        ("x 1s", ["x"], 60),
        ("it's broken", ["it's", "broken"], 3600),
    ],
)
def test_search_words_and_ranges_are_read_from_plain_text(text, terms, seconds):
    assert parse_search(text) == (terms, seconds)


def test_files_give_the_count_and_newest_line_within_the_range(files_phone):
    reply = files_phone.text("logs payment error")
    # The newest line was written 30 s before the test; a slow machine may read it a second later.
    assert re.match(r"logs: 2 matches 'payment error' in 1h, newest 3[01]s ago: ", reply), reply
    assert "order=4" in reply and "order=3" in reply and "order=1" not in reply


def test_a_longer_range_reaches_older_lines_but_not_old_files(files_phone):
    reply = files_phone.text("logs declined 1d")
    assert reply.startswith("logs: 2 matches")
    assert "order=99" not in reply


def test_the_status_line_counts_files(log_dir):
    result = LogFilesMonitor(f"{log_dir}/*.log").check()
    assert result.ok and result.text.startswith("ok 2 files, newest write ")


def test_a_glob_matching_nothing_is_an_error(tmp_path):
    result = LogFilesMonitor(f"{tmp_path}/nope/*.log").check()
    assert not result.ok and result.error.startswith("no files match")


def test_lines_without_timestamps_count_when_the_file_is_recent(tmp_path):
    (tmp_path / "plain.log").write_text("boot\nfatal: disk full\n")
    result = LogFilesMonitor(f"{tmp_path}/*.log").query("search", ["3600", "disk", "full"])
    assert result.text.startswith("logs: 1 match 'disk full' in 1h")
    assert result.text.endswith("fatal: disk full")


def test_without_a_log_backend_logs_says_what_to_set(phone):
    assert phone.text("logs payment") == "Not configured: set LOKI_URL or LOG_FILES to search logs."
