"""What people really text at 3 a.m. -> the command and argument Operator must pick.

The table (tests/payloads/phrasings.tsv, its tune rows) runs the real resolver against a real app; the end-to-end tables text the
same kinds of phrasing through the signed /sms path and check the reply (and, for alert
actions, what changed in the store), with a real Prometheus and a Loki double.
"""

from __future__ import annotations

import re

import pytest

import commands  # noqa: F401 - registers the real commands
from command_processor import CommandProcessor
from conversation import composer
from tests.support.alerts import WEBHOOK_TOKEN, alert, deliver, fire
from tests.support.apps import with_settings
from tests.support.fakes.loki import FakeLoki
from tests.support.phones import RESPONDER, VIEWER, Phone
from tests.support.phrasings import phrasings
from tests.support.prometheus_server import prometheus
from tests.support.servers import free_port

TUNE = phrasings("tune")


@pytest.fixture
def processor(services) -> CommandProcessor:
    return CommandProcessor(services)


@pytest.mark.parametrize("row", TUNE, ids=[p.text[:40] for p in TUNE])
def test_a_phrasing_is_read_as_the_canonical_command_meant(processor, row):
    # The composer runs first on a real SMS (smart quotes, other scripts' digits).
    assert processor.interpret(composer.normalize(row.text)).canonical == row.canonical


def test_the_table_is_large_enough_to_mean_something_and_keeps_a_part_aside():
    held = phrasings("held")
    assert len(TUNE) + len(held) >= 300 and len(held) >= 80
    assert not {p.text for p in TUNE} & {p.text for p in held}


@pytest.mark.parametrize(
    "text",
    [
        "cancel",
        "CANCEL",
        "stop",
        "unsubscribe",
        "quit",
        "end",
        "xyzzy",
        "please",
        "",
        "   ",
        "!!!",
        'Liked "Reply YES to ack 3 alerts (#1,#2,#3) (within 5 min)."',
        "Loved “FIRING 3 HighCPU web-1 #12”",
        'Reacted 👍 to "Reply YES to snooze 2 alerts for 1h"',
    ],
)
def test_twilio_keywords_and_noise_resolve_to_nothing(processor, text):
    assert processor.resolve(text)[0] is None


# --- end to end: alert actions over the signed /sms path ------------------------------------


@pytest.fixture
def alerting(settings):
    return with_settings(
        settings,
        alertmanager_token=WEBHOOK_TOKEN,
        rate_limit="1000 per minute",
        alertmanager_url=f"http://127.0.0.1:{free_port()}",  # nothing listens there
    )


@pytest.fixture
def alert_app(alerting):
    from app import create_app

    app = create_app(alerting)
    yield app
    app.extensions["operator"].close()


@pytest.fixture
def responder(alert_app) -> Phone:
    return Phone(alert_app.test_client(), RESPONDER)


@pytest.mark.parametrize(
    "text, reply",
    [
        ("ack it", "Acked #2 DiskFull"),
        ("on it", "Acked #2 DiskFull"),
        ("“ack #1”", "Acked #1 HighCPU"),
        ("ok ack 1 thanks", "Acked #1 HighCPU"),
        ("acknowlege 1", "Acked #1 HighCPU"),
        ("ack ١", "Acked #1 HighCPU"),
        ("snooze #1 for half an hour", "Snoozed #1 HighCPU for 30m, until "),
        ("mute 1 2hrs", "Snoozed #1 HighCPU for 2h, until "),
        ("snooze it 90 min", "Snoozed #2 DiskFull for 1h30m, until "),
        ("snooze 1 for an hour and a half", "Snoozed #1 HighCPU for 1h30m, until "),
        ("resolve #1 please", "Resolved #1 HighCPU after"),
        ("mark 1 resolved", "Resolved #1 HighCPU after"),
        ("#1?", "#1 FIRING HighCPU for"),
        ("was 1 acked?", "#1 FIRING HighCPU for"),
        ("what's firing?", "2 open:"),
        ("ack all", "Reply YES to ack 2 alerts (#1,#2)"),
        ("snooze 1 -5m", "A duration cannot be negative"),
        ("snooze 1 0m", "'0m' is no length of time"),
        ("silence 1 9999d", "At most 30d for silence."),
        ("ack 99999999999999999999", "No alert #99999999999999999999."),
        ("don't ack 1", "Nothing to cancel."),
        ("how do i snooze", "snooze [id|all] 30m:"),
    ],
)
def test_alert_phrasings_do_what_was_meant_over_sms(alert_app, responder, text, reply):
    client = alert_app.test_client()
    fire(client, "HighCPU")
    fire(client, "DiskFull")
    deliver(alert_app)
    assert responder.text(text).startswith(reply)


@pytest.mark.parametrize("text", ["was 1 acked?", "don't ack 1", "is 1 resolved?", "ack ١٢", "snooze 1 -5m"])
def test_questions_and_refusals_change_nothing(alert_app, responder, text):
    client = alert_app.test_client()
    fire(client, "HighCPU")
    responder.text(text)
    current = alert(alert_app.extensions["operator"], 1)
    assert (current.status, current.acked_at, current.snoozed_until) == ("firing", None, None)


def test_ack_all_then_yep_acks_every_open_alert(alert_app, responder):
    client = alert_app.test_client()
    fire(client, "A")
    fire(client, "B")
    assert responder.text("ack them all").startswith("Reply YES")
    assert responder.text("yep") == "Acked 2 alerts: #1,#2."


def test_cancel_is_left_to_twilio_and_never_drops_or_confirms_anything(alert_app, responder):
    client = alert_app.test_client()
    fire(client, "A")
    fire(client, "B")
    responder.text("ack all")
    assert responder.text("CANCEL") is None  # Twilio opts the number out; Operator answers nothing
    assert alert(alert_app.extensions["operator"], 1).acked_at is None
    assert responder.text("go ahead") == "Acked 2 alerts: #1,#2."


def test_a_reaction_to_the_question_confirms_nothing(alert_app, responder):
    client = alert_app.test_client()
    fire(client, "A")
    fire(client, "B")
    question = responder.text("ack all")
    assert responder.text(f"Liked “{question}”") == "Operator cannot read reactions; text YES, NO or HELP."
    assert alert(alert_app.extensions["operator"], 1).acked_at is None
    assert responder.text("yes") == "Acked 2 alerts: #1,#2."


def test_a_viewer_asking_to_ack_in_plain_words_is_refused(alert_app):
    client = alert_app.test_client()
    fire(client, "HighCPU")
    viewer = Phone(client, VIEWER)
    assert viewer.text("please ack 1") == "'ack' needs the responder role; you are viewer."
    assert viewer.text("was 1 acked?").startswith("#1 FIRING HighCPU")


# --- end to end: queries --------------------------------------------------------------------


@pytest.mark.parametrize("text", ["thanks", "ok thanks!", "thank you", "got it", "cool"])
def test_thanks_gets_no_reply_so_no_sms_is_paid_for(phone, text):
    assert phone.text(text) is None


STATUS = r"sys \S+ .*mem \d+% disk \d+%"


@pytest.mark.parametrize(
    "text, reply",
    [
        ("hey operator, status please", STATUS),
        ("stauts", STATUS),
        ("is everything ok?", STATUS),
        ("how's the CPU looking?", r"sys cpu \d+%$"),
        ("what's memory like on prod?", r"sys memory \d+%$"),
        ("disk space?", r"sys disk \d+%$"),
        ("hi", r"Commands: status, "),
        ("help! the site is down", r"Commands: status, "),
        ("help with snoozing alerts", r"snooze \[id\|all\] 30m: "),
        ("what can you do?", r"Commands: status, "),
        ("next", r"Nothing more to show\."),
        ("yes", r"Nothing to confirm"),
        ("nope", r"Nothing to cancel\."),
        ("xyzzy", r"Unknown command 'xyzzy'\."),
    ],
)
def test_everyday_phrasings_get_the_right_reply_over_sms(phone, text, reply):
    assert re.match(reply, phone.text(text))


@pytest.fixture(scope="module")
def prom(tmp_path_factory):
    with prometheus(tmp_path_factory.mktemp("prometheus")) as server:
        yield server


@pytest.fixture
def prom_phone(prom, settings):
    from app import create_app

    app = create_app(with_settings(settings, prometheus_url=prom.url, rate_limit="1000 per minute"))
    yield Phone(app.test_client())
    app.extensions["operator"].close()


@pytest.mark.slow  # a real Prometheus
@pytest.mark.parametrize(
    "text, metric",
    [
        ("how's the CPU looking?", "cpu"),
        ("metrcis cpu", "cpu"),
        ("what's memory like on prod?", "memory"),
        ("is memory up?", "memory"),
        ("any 500s?", "errors"),
        ("error rate?", "errors"),
        ("is the site slow?", "latency"),
        ("disk space?", "disk"),
        ("targets?", "up"),
    ],
)
def test_metric_questions_query_the_metric_meant_on_a_real_prometheus(prom_phone, text, metric):
    assert prom_phone.text(text).startswith(f"{metric}:")


@pytest.fixture
def loki_phone(settings):
    from app import create_app

    with FakeLoki() as fake:
        fake.push({"job": "shop"}, "ERROR payment declined order=2", ago=1200)
        fake.push({"job": "shop"}, 'ERROR payment gateway said "card declined"', ago=120)
        app = create_app(with_settings(settings, loki_url=fake.url, rate_limit="1000 per minute"))
        yield Phone(app.test_client()), fake
        app.extensions["operator"].close()


@pytest.mark.parametrize(
    "text, reply, query",
    [
        (
            "show me payment errors in the logs from the last hour",
            "loki: 0 matches 'payment error' in 1h",
            '{job=~".+"} |= "payment" |= "error"',
        ),
        (
            "logs payment ERROR 15m",
            "loki: 1 match 'payment ERROR' in 15m",
            '{job=~".+"} |= "payment" |= "ERROR"',
        ),
        ("logs “card declined” 1d", "loki: 1 match 'card declined' in 1d", '{job=~".+"} |= "card declined"'),
        ("any declined in the logs?", "loki: 2 matches 'declined' in 1h", '{job=~".+"} |= "declined"'),
    ],
)
def test_log_phrasings_send_the_words_meant_to_loki(loki_phone, text, reply, query):
    phone, fake = loki_phone
    assert phone.text(text).startswith(reply)
    assert fake.requests[-1].query["query"] == query
