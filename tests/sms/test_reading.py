"""What a plain-language text is read as, end to end: logs versus metrics, questions instead of
guesses, the stored reading, `flask parse`, and replies that explain an empty answer."""

from __future__ import annotations

import datetime
import re

import pytest
from sqlalchemy import select

from inbound import audit
from tests.support.alerts import WEBHOOK_TOKEN, alert, fire
from tests.support.apps import app_with, from_file, with_settings
from tests.support.phones import RESPONDER, VIEWER, Phone
from tests.support.prometheus_server import prometheus

GUIDE = [
    ("How's the CPU looking?", "metrics cpu"),
    ("Any errors in the last hour?", "logs error 1h"),
    ("What's the database status?", "db"),
    ("Is everything ok?", "status"),
    ("Show me memory usage", "metrics memory"),
    ("Find errors with payment", "logs payment error"),
]


def _stamp(minutes_ago: float) -> str:
    when = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=minutes_ago)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def log_file(tmp_path):
    path = tmp_path / "shop.log"
    path.write_text(
        f"{_stamp(200)} ERROR old failure nobody cares about\n"
        f"{_stamp(30)} ERROR payment declined order=7\n"
        f"{_stamp(5)} INFO checkout ok\n"
        f"{_stamp(2)} ERROR kafka timeout on orders topic\n"
    )
    return path


@pytest.fixture
def logs_phone(settings, log_file):
    with app_with(with_settings(settings, log_files=str(log_file), rate_limit="1000 per minute")) as app:
        yield Phone(app.test_client())


@pytest.mark.parametrize("text, canonical", GUIDE)
def test_the_guides_six_examples_are_read_exactly(app, text, canonical):
    result = app.test_cli_runner().invoke(args=["parse", text])
    assert result.exit_code == 0, result.output
    assert result.output.split("\t")[0] == canonical


@pytest.mark.parametrize(
    "text, reply",
    [
        ("Any errors in the last hour?", "logs: 2 matches 'error' in 1h"),
        ("Find errors with payment", "logs: 1 match 'payment error' in 1h"),
        ("any kafka timeouts?", "logs: 1 match 'kafka timeout' in 1h"),
        ("errors today", "logs: 3 matches 'error' in 1d"),
        # No Prometheus: the log files answer an error question instead of a list of host readings.
        ("any errors?", "logs: 2 matches 'error' in 1h"),
    ],
)
def test_error_questions_with_a_range_a_verb_or_a_subject_search_the_logs(logs_phone, text, reply):
    assert logs_phone.text(text).startswith(reply)


def test_an_error_rate_is_never_a_log_search(logs_phone):
    assert logs_phone.text("what's the error rate?").startswith("Metrics (this host")


def test_a_state_changing_command_read_from_a_question_is_asked_about_before_it_runs(alert_app, responder):
    fire(alert_app.test_client(), "HighCPU")
    assert responder.text("can you ack 1?") == "Did you mean 'ack 1'? Reply YES to run it."
    assert alert(alert_app.extensions["operator"], 1).acked_at is None
    assert responder.text("yes").startswith("Acked #1 HighCPU")


@pytest.mark.parametrize("text", ["ack 1, no wait", "ack 1 never mind", "resolve 1 - not yet"])
def test_an_action_called_off_in_the_same_text_is_asked_about_and_never_run(alert_app, responder, text):
    fire(alert_app.test_client(), "HighCPU")
    assert responder.text(text).startswith("Did you mean '")
    current = alert(alert_app.extensions["operator"], 1)
    assert (current.status, current.acked_at) == ("firing", None)


def test_a_typo_between_two_commands_asks_and_the_number_picks_the_reading(alert_app, responder):
    fire(alert_app.test_client(), "HighCPU")
    # "mure": one letter from "more" (here: alert 1's details) and from "mute" (snooze).
    assert (
        responder.text("mure 1 1h") == "Did you mean 1) alerts 1 or 2) snooze 1 1h? Reply 1 or 2 (YES for 1)."
    )
    assert alert(alert_app.extensions["operator"], 1).snoozed_until is None
    assert responder.text("2").startswith("Snoozed #1 HighCPU for 1h, until ")
    # The question was answered once: "2" is alert #2 again.
    assert responder.text("2") == "No alert #2. Text ALERTS for open ones."


def test_yes_runs_the_first_reading(alert_app, responder):
    fire(alert_app.test_client(), "HighCPU")
    responder.text("mure 1 1h")
    assert responder.text("yes").startswith("#1 FIRING HighCPU")
    assert alert(alert_app.extensions["operator"], 1).snoozed_until is None


def test_no_drops_the_question_and_a_viewer_choice_is_still_refused(alert_app, responder):
    fire(alert_app.test_client(), "HighCPU")
    responder.text("mure 1 1h")
    assert responder.text("no") == "OK, nothing done."
    assert responder.text("2") == "No alert #2. Text ALERTS for open ones."
    viewer = Phone(alert_app.test_client(), VIEWER)
    viewer.text("mure 1 1h")
    assert viewer.text("2") == "'snooze' needs the responder role; you are viewer."
    assert alert(alert_app.extensions["operator"], 1).snoozed_until is None


def test_every_message_stores_its_canonical_command_and_confidence(app, phone):
    phone.text("snooze 12 for half an hour")
    phone.text("xyzzy")
    with app.extensions["operator"].engine.connect() as conn:
        rows = conn.execute(select(audit.messages).order_by(audit.messages.c.id)).all()
    assert [(r.body, r.canonical, r.confidence) for r in rows] == [
        ("snooze 12 for half an hour", "snooze 12 30m", 1.0),
        ("xyzzy", "none", 0.0),
    ]


def test_parse_prints_one_line_per_phrasing_from_stdin_and_runs_nothing(alert_app):
    fire(alert_app.test_client(), "HighCPU")
    result = alert_app.test_cli_runner().invoke(
        args=["parse", "--file", "-"], input="ack all\nsnooze 1 for two hours\n\nhelp with snoozing\n"
    )
    assert result.exit_code == 0, result.output
    lines = [line.split("\t") for line in result.output.splitlines()]
    assert [line[0] for line in lines] == ["ack all", "snooze 1 2h", "none", "help snooze"]
    assert all(0.0 <= float(line[1]) <= 1.0 and line[2] for line in lines)
    assert alert(alert_app.extensions["operator"], 1).acked_at is None


def test_parse_reads_bytes_that_are_not_utf8_without_a_traceback(app):
    result = app.test_cli_runner().invoke(
        args=["parse", "--file", "-"], input=b'\xff\xfeack 1\nlogs "card declined"\n'
    )
    assert result.exit_code == 0, result.output
    assert [line.split("\t")[0] for line in result.output.splitlines()] == ["ack 1", 'logs "card declined"']


def test_parse_without_a_phrasing_is_a_usage_error(app):
    result = app.test_cli_runner().invoke(args=["parse"])
    assert result.exit_code == 2 and "give a phrasing" in result.output


@pytest.mark.parametrize("body", ["👍", "🙏🙏", "👍🏽"])
def test_an_emoji_only_text_is_told_that_words_are_read_not_that_it_was_empty(phone, body):
    assert phone.text(body).startswith("Operator reads words, not emoji")


@pytest.fixture
def alert_app(settings):
    changed = with_settings(settings, alertmanager_token=WEBHOOK_TOKEN, rate_limit="1000 per minute")
    with app_with(changed) as app:
        yield app


@pytest.fixture
def responder(alert_app) -> Phone:
    return Phone(alert_app.test_client(), RESPONDER)


# --- a real Prometheus without node_exporter or an app exporting http_requests_total ---------


@pytest.fixture(scope="module")
def prom(tmp_path_factory):
    with prometheus(tmp_path_factory.mktemp("prometheus")) as server:
        yield server


@pytest.mark.slow
def test_cpu_without_node_exporter_says_what_is_missing_and_reads_this_host(prom, settings):
    with app_with(with_settings(settings, prometheus_url=prom.url)) as app:
        reply = Phone(app.test_client()).text("how's the CPU looking?")
    assert reply.startswith("cpu: no data in Prometheus. It needs node_exporter on each host.")
    assert " This host: sys cpu " in reply


@pytest.mark.slow
def test_errors_without_an_error_metric_answer_from_the_logs_that_have_them(prom, settings, log_file):
    changed = with_settings(settings, prometheus_url=prom.url, log_files=str(log_file))
    with app_with(changed) as app:
        reply = Phone(app.test_client()).text("errors?")
    assert reply.startswith("logs: 2 matches 'error' in 1h")
    assert "no data" not in reply


@pytest.mark.slow
def test_a_reply_ending_in_more_series_has_a_more_page_listing_them(prom, settings, tmp_path):
    config = tmp_path / "operator.yml"
    config.write_text(
        "queries:\n  buckets: 'count by (le) (prometheus_http_request_duration_seconds_bucket)'\n"
    )
    changed = with_settings(settings, prometheus_url=prom.url, **from_file(config))
    with app_with(changed) as app:
        phone = Phone(app.test_client())
        first = phone.text("metrics buckets")
        rest = phone.text("more")
    shown = first.split(" +", 1)[0].removeprefix("buckets: ").split(", ")
    assert " more... (1/" in first and first.endswith("Reply MORE")
    listed = rest.split(": ", 1)[1].rsplit(" (", 1)[0].split(", ")
    assert rest.startswith(f"buckets {len(shown) + 1}-") and listed and not set(listed) & set(shown)


def _with_phrases(settings, tmp_path, yaml_text: str):
    config = tmp_path / "operator.yml"
    config.write_text(yaml_text)
    return with_settings(settings, **from_file(config))


def test_phrases_in_the_config_file_extend_the_vocabulary(settings, tmp_path):
    changed = _with_phrases(
        settings,
        tmp_path,
        "phrases:\n  heat: cpu\n  how's the shop: status\n  anything burning on checkout: logs checkout error\n",
    )
    with app_with(changed) as app:
        result = app.test_cli_runner().invoke(
            args=["parse", "--file", "-"], input="heat?\nhow's the shop?\nanything burning on checkout\n"
        )
    assert [line.split("\t")[0] for line in result.output.splitlines()] == [
        "metrics cpu",
        "status",
        "logs checkout error",
    ]


@pytest.mark.parametrize(
    "yaml_text, message",
    [
        ("phrases: [cpu]\n", "`phrases` must map words or phrasings"),
        ("phrases:\n  heat: frobnicate\n", "phrases.'heat' must name a command or a metric"),
        ("phrases:\n  heat: 12\n", "phrases.'heat' must name a command or a metric"),
        ("phrases:\n  stop: status\n", "phrases.'stop' is a Twilio keyword"),
        ("phrases:\n  '!!!': status\n", "must be 1 to 5 words"),
    ],
)
def test_a_bad_phrase_stops_start_up_naming_it(settings, tmp_path, yaml_text, message):
    from app import create_app
    from config import ConfigError

    with pytest.raises(ConfigError, match=re.escape(message)):
        create_app(_with_phrases(settings, tmp_path, yaml_text))


@pytest.mark.slow
def test_an_error_question_without_log_search_answers_from_the_metric(prom, settings):
    with app_with(with_settings(settings, prometheus_url=prom.url, sms_max_segments=3)) as app:
        reply = Phone(app.test_client()).text("Any errors in the last hour?")
    assert reply.startswith(
        "errors: no data in Prometheus. It needs your services to export http_requests_total"
    )
    assert reply.endswith("(Set LOKI_URL or LOG_FILES to search the logs.)")
