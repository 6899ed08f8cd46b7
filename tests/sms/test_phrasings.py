"""What people really text at 3 a.m. -> the command and argument Operator must pick.

The first table runs the real resolver against a real app; the end-to-end tables text the
same kinds of phrasing through the signed /sms path and check the reply (and, for alert
actions, what changed in the store), with a real Prometheus and a Loki double.
"""

from __future__ import annotations

import re

import pytest

import commands  # noqa: F401 - registers the real commands
from command_processor import CommandProcessor
from commands.queries import SYNONYMS, search_words
from conversation import composer
from conversation.arguments import parse_target
from conversation.vocabulary import FILLER
from core.timeutil import humanize
from monitors.prometheus import ALIASES
from tests.support.alerts import WEBHOOK_TOKEN, alert, deliver, fire
from tests.support.apps import with_settings
from tests.support.fakes.loki import FakeLoki
from tests.support.phones import RESPONDER, VIEWER, Phone
from tests.support.prometheus_server import prometheus
from tests.support.servers import free_port

ALERT_ACTIONS = ("ack", "snooze", "silence", "unsilence", "resolve", "alerts")


def key_of(name: str, args: list[str], rest: str) -> str:
    """The argument that matters for `name`, in a form a person can read in the table."""
    if name in ALERT_ACTIONS:
        target = parse_target(args, wants_duration=name in ("snooze", "silence"))
        if target.problem:
            return "refused"
        which = ",".join(f"#{i}" for i in target.ids) or ("all" if target.all else "last")
        return f"{which} {humanize(target.seconds)}" if target.seconds else which
    if name == "metrics":
        words = [a for a in args if a not in FILLER] or args
        named = [SYNONYMS.get(w, ALIASES.get(w, w)) for w in words]
        return next(
            (w for w in named if w in ("cpu", "memory", "disk", "load", "errors", "latency", "up")), ""
        )
    if name == "logs":
        terms, seconds = search_words(rest)
        return f"{' | '.join(terms)} {humanize(seconds)}"
    if name == "help":
        return next((a for a in args if a not in FILLER), "")
    return ""


RESOLVES = [
    # status, however it is asked
    ("status", "status", ""),
    ("STATUS", "status", ""),
    ("Status?!", "status", ""),
    ("stauts", "status", ""),
    ("staus", "status", ""),
    ("stats", "status", ""),
    ("hey operator, status please", "status", ""),
    ("status pls", "status", ""),
    ("what's the status?", "status", ""),
    ("Status report", "status", ""),
    ("sitrep", "status", ""),
    ("is everything ok?", "status", ""),
    ("everything ok?", "status", ""),
    ("all good?", "status", ""),
    ("ok?", "status", ""),
    ("what's going on", "status", ""),
    ("what's wrong?", "status", ""),
    ("whats broken", "status", ""),
    ("is anything down?", "status", ""),
    ("any issues?", "status", ""),
    ("how's prod?", "status", ""),
    ("is prod ok", "status", ""),
    ("s", "status", ""),
    ("st", "status", ""),
    # help
    ("help", "help", ""),
    ("HELP!", "help", ""),
    ("?", "help", ""),
    ("??", "help", ""),
    ("hepl", "help", ""),
    ("commands", "help", ""),
    ("menu", "help", ""),
    ("hi", "help", ""),
    ("hey", "help", ""),
    ("hi there", "help", ""),
    ("what can you do?", "help", ""),
    ("who are you?", "help", ""),
    ("are you there?", "help", ""),
    ("ping", "help", ""),
    ("I need help", "help", ""),
    ("help ack", "help", "ack"),
    ("help with snooze", "help", "snooze"),
    ("how do i snooze", "help", "snooze"),
    ("how can I silence an alert?", "help", "silence"),
    ("what does ack do?", "help", "ack"),
    # more
    ("more", "more", ""),
    ("MORE", "more", ""),
    ("next", "more", ""),
    ("continue", "more", ""),
    ("next page", "more", ""),
    ("more please", "more", ""),
    ("tell me more", "more", ""),
    ("show more", "more", ""),
    ("m", "more", ""),
    # metrics
    ("metrics", "metrics", ""),
    ("metrics cpu", "metrics", "cpu"),
    ("metrcis cpu", "metrics", "cpu"),
    ("metics cpu", "metrics", "cpu"),
    ("METRICS CPU", "metrics", "cpu"),
    ("how's the CPU looking?", "metrics", "cpu"),
    ("cpu?", "metrics", "cpu"),
    ("Cpu usage", "metrics", "cpu"),
    ("cpu status", "metrics", "cpu"),
    ("status cpu", "metrics", "cpu"),
    ("what's memory like on prod?", "metrics", "memory"),
    ("memory?", "metrics", "memory"),
    ("ram", "metrics", "memory"),
    ("how's the memroy", "metrics", "memory"),
    ("disk space?", "metrics", "disk"),
    ("disk full?", "metrics", "disk"),
    ("how's the load", "metrics", "load"),
    ("any 500s?", "metrics", "errors"),
    ("errors?", "metrics", "errors"),
    ("error rate?", "metrics", "errors"),
    ("whats the latency", "metrics", "latency"),
    ("p95", "metrics", "latency"),
    ("is the site slow?", "metrics", "latency"),
    ("graph cpu", "metrics", "cpu"),
    ("metrics for cpu please", "metrics", "cpu"),
    # database
    ("db", "db", ""),
    ("DB!", "db", ""),
    ("is the database ok?", "db", ""),
    ("how's postgres", "db", ""),
    ("mysql", "db", ""),
    ("db connections", "db", ""),
    ("replication lag?", "db", ""),
    ("any slow queries?", "db", ""),
    ("status of the db", "db", ""),
    ("databse", "db", ""),
    # New Relic, custom API
    ("apps", "apps", ""),
    ("how are the apps doing in new relic", "apps", ""),
    ("new relic", "apps", ""),
    ("apdex?", "apps", ""),
    ("show me the apps", "apps", ""),
    ("nr errors", "nr", ""),
    ("api", "api", ""),
    ("how's the api?", "api", ""),
    ("is the api up?", "api", ""),
    # logs
    ("logs payment error", "logs", "payment | error 1h"),
    ("logs payment error 30m", "logs", "payment | error 30m"),
    ("show me payment errors in the logs from the last hour", "logs", "payment | errors 1h"),
    ("check the logs for checkout errors in the last 15 minutes", "logs", "checkout | errors 15m"),
    ("logs timeout last 2 hours", "logs", "timeout 2h"),
    ('logs "card declined" 1d', "logs", "card declined 1d"),
    ("logs “card declined” 1d", "logs", "card declined 1d"),
    ('search logs for "out of memory" in the last 30 minutes', "logs", "out of memory 30m"),
    ("grep timeout", "logs", "timeout 1h"),
    ("error logs", "logs", "error 1h"),
    ("any timeouts in the logs?", "logs", "timeouts 1h"),
    ("lgos payment", "logs", "payment 1h"),
    ("logs for checkout from the past day", "logs", "checkout 1d"),
    ("any exceptions in the logs today?", "logs", "exceptions 1d"),
    ("errors in logs, last 2h please", "logs", "errors 2h"),
    ("tail logs", "logs", " 1h"),
    ("logs payment errors thanks", "logs", "payment | errors 1h"),
    # alerts
    ("alerts", "alerts", "last"),
    ("are there any alerts?", "alerts", "last"),
    ("any alerts?", "alerts", "last"),
    ("what's firing?", "alerts", "last"),
    ("anything on fire?", "alerts", "last"),
    ("what paged me?", "alerts", "last"),
    ("what woke me up?", "alerts", "last"),
    ("alrets", "alerts", "last"),
    ("any more alerts?", "alerts", "last"),
    ("#12?", "alerts", "#12"),
    ("12", "alerts", "#12"),
    ("alert 12", "alerts", "#12"),
    ("what's up with 12?", "alerts", "#12"),
    ("status of 12", "alerts", "#12"),
    ("details on #12", "alerts", "#12"),
    ("was 12 acked?", "alerts", "#12"),
    ("is 12 resolved?", "alerts", "#12"),
    ("hey, is 12 resolved?", "alerts", "#12"),
    ("who acked 12?", "alerts", "#12"),
    ("12 acked?", "alerts", "#12"),
    ("has 12 been silenced?", "alerts", "#12"),
    ("how long is 12 snoozed?", "alerts", "#12"),
    ("can you tell me if 12 was acked", "alerts", "#12"),
    # ack
    ("ack", "ack", "last"),
    ("ack it", "ack", "last"),
    ("ack that", "ack", "last"),
    ("ack the last one", "ack", "last"),
    ("ACK!", "ack", "last"),
    ("acked", "ack", "last"),
    ("on it", "ack", "last"),
    ("ok, I'm on it", "ack", "last"),
    ("ack 12", "ack", "#12"),
    ("ack #12", "ack", "#12"),
    ("Ack #12.", "ack", "#12"),
    ("“ack 12”", "ack", "#12"),
    ("ack12", "ack", "#12"),
    ("acknowledge 12", "ack", "#12"),
    ("acknowlege 12", "ack", "#12"),
    ("ok ack 12 thanks", "ack", "#12"),
    ("can you ack 12", "ack", "#12"),
    ("ack alert #12 please", "ack", "#12"),
    ("12 ack", "ack", "#12"),
    ("ack 12 13", "ack", "#12,#13"),
    ("ack 12,13", "ack", "#12,#13"),
    ("ack 12 and 13", "ack", "#12,#13"),
    ("ack all", "ack", "all"),
    ("ack them all", "ack", "all"),
    ("please ack all of them", "ack", "all"),
    ("ack ١٢", "ack", "#12"),
    ("ack 99999999999999999999", "ack", "refused"),
    ("hey\nack 12", "ack", "#12"),
    ("ack 12\nsnooze 13 1h", "ack", "#12"),
    ("status\nSent from my iPhone", "status", ""),
    # snooze
    ("snooze 12 30m", "snooze", "#12 30m"),
    ("snooze #12 30m", "snooze", "#12 30m"),
    ("snooze 12 for 30 minutes", "snooze", "#12 30m"),
    ("snooze 12 for an hour", "snooze", "#12 1h"),
    ("snooze 12 an hour", "snooze", "#12 1h"),
    ("snooze 12 for half an hour", "snooze", "#12 30m"),
    ("snooze 12 2hrs", "snooze", "#12 2h"),
    ("snooze 12 90 min", "snooze", "#12 1h30m"),
    ("snooze 12 1h30", "snooze", "#12 1h30m"),
    ("snooze 12 1 hour 30 minutes", "snooze", "#12 1h30m"),
    ("snooze 12 for an hour and a half", "snooze", "#12 1h30m"),
    ("snooze 12 for 2 and a half hours", "snooze", "#12 2h30m"),
    ("snooze 12 for a couple of hours", "snooze", "#12 2h"),
    ("snooze 12 for two hours", "snooze", "#12 2h"),
    ("snooze 12 for fifteen minutes", "snooze", "#12 15m"),
    ("snooze 12 for 1.5 hours", "snooze", "#12 1h30m"),
    ("snooze 12 for a day", "snooze", "#12 1d"),
    ("snooze 12 45", "snooze", "#12 45m"),
    ("snooze it for 10 min", "snooze", "last 10m"),
    ("snooze 10m", "snooze", "last 10m"),
    ("mute 12 2h", "snooze", "#12 2h"),
    ("mute it for an hour", "snooze", "last 1h"),
    ("could you snooze 12 for 15 minutes please", "snooze", "#12 15m"),
    ("snoze 12 1h", "snooze", "#12 1h"),
    ("snooze everything for an hour", "snooze", "all 1h"),
    ("snooze all 1h", "snooze", "all 1h"),
    ("snooze 12 -5m", "snooze", "refused"),
    ("snooze 12 0m", "snooze", "refused"),
    # silence / unsilence
    ("silence 12 2h", "silence", "#12 2h"),
    ("silence 12 for 2 hours", "silence", "#12 2h"),
    ("silence #12 for 4h", "silence", "#12 4h"),
    ("slience 12 2h", "silence", "#12 2h"),
    ("silence it for 30 mins", "silence", "last 30m"),
    ("unsilence 12", "unsilence", "#12"),
    ("unmute 12", "unsilence", "#12"),
    ("cancel the silence on 12", "unsilence", "#12"),
    ("remove silence 12", "unsilence", "#12"),
    ("lift the silence on #12", "unsilence", "#12"),
    # resolve
    ("resolve 12", "resolve", "#12"),
    ("resolve #12 please", "resolve", "#12"),
    ("mark 12 resolved", "resolve", "#12"),
    ("mark 12 as resolved", "resolve", "#12"),
    ("close 12", "resolve", "#12"),
    ("ok close 12", "resolve", "#12"),
    ("12 is fixed", "resolve", "#12"),
    ("it's fixed", "resolve", "last"),
    ("close it", "resolve", "last"),
    ("reslove 12", "resolve", "#12"),
    # yes / no
    ("yes", "yes", ""),
    ("YES", "yes", ""),
    ("y", "yes", ""),
    ("Y!", "yes", ""),
    ("yep", "yes", ""),
    ("yeah", "yes", ""),
    ("yes please", "yes", ""),
    ("confirm", "yes", ""),
    ("confirmed", "yes", ""),
    ("go ahead", "yes", ""),
    ("ok do it", "yes", ""),
    ("no", "no", ""),
    ("No.", "no", ""),
    ("nope", "no", ""),
    ("nah", "no", ""),
    ("no thanks", "no", ""),
    ("never mind", "no", ""),
    ("nvm", "no", ""),
    ("cancel that", "no", ""),
    ("don't", "no", ""),
    ("don't ack 12", "no", ""),
    ("do not snooze 12", "no", ""),
    # thanks: no answer needed
    ("thanks", "thanks", ""),
    ("thank you!", "thanks", ""),
    ("ok thanks", "thanks", ""),
    ("ok", "thanks", ""),
    ("great, thanks", "thanks", ""),
    ("got it", "thanks", ""),
    ("cool", "thanks", ""),
    ("thx", "thanks", ""),
]


@pytest.fixture
def processor(services) -> CommandProcessor:
    return CommandProcessor(services)


@pytest.mark.parametrize("text, name, key", RESOLVES)
def test_a_phrasing_resolves_to_the_command_and_argument_meant(processor, text, name, key):
    # The composer runs first on a real SMS (smart quotes, other scripts' digits).
    cmd, args, rest = processor.resolve(composer.normalize(text))
    assert cmd is not None, f"{text!r} resolved to nothing"
    assert (cmd.name, key_of(cmd.name, args, rest)) == (name, key)


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


def test_the_table_is_large_enough_to_mean_something():
    assert len(RESOLVES) >= 150


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
        ("snooze #1 for half an hour", "Snoozed #1 HighCPU for 30m."),
        ("mute 1 2hrs", "Snoozed #1 HighCPU for 2h."),
        ("snooze it 90 min", "Snoozed #2 DiskFull for 1h30m."),
        ("snooze 1 for an hour and a half", "Snoozed #1 HighCPU for 1h30m."),
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
            "loki: 0 matches 'payment errors' in 1h",
            '{job=~".+"} |= "payment" |= "errors"',
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
