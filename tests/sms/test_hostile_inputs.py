"""Hostile and broken SMS bodies over the signed /sms path: never a 500, never a leak, never more
than the sender's role allows, and always one segment (or nothing, where nothing is right).

Runs against a real Prometheus (PromQL injection), a Loki double that really parses LogQL
(LogQL injection) and the alert records behind a real Alertmanager-shaped webhook.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest
from sqlalchemy import inspect, select

from app import create_app
from conversation import composer
from inbound import audit
from tests.support.alerts import WEBHOOK_TOKEN, alert, fire
from tests.support.apps import with_settings
from tests.support.fakes.loki import FakeLoki
from tests.support.phones import ADMIN, RESPONDER, STRANGER, VIEWER, Phone, reply_text
from tests.support.prometheus_server import prometheus
from tests.support.servers import free_port

# Every test here texts an app wired to a real Prometheus started for the module.
pytestmark = pytest.mark.slow

# What a reply must never show a person: our insides.
LEAKS = re.compile(
    r"Traceback|File \"|\.py\b|sqlalchemy|psycopg|0x[0-9a-f]{6,}|<class |/work/|Exception", re.I
)

HOSTILE = [
    # SQL
    "'; DROP TABLE messages; --",
    "ack 1; DROP TABLE alerts",
    "ack 1 OR 1=1",
    "status' OR '1'='1",
    "alerts 1 UNION SELECT phone FROM messages",
    "resolve 1'); DELETE FROM alerts; --",
    # PromQL / LogQL
    'metrics up{job=~".+"} or vector(1)',
    "metrics count(up)",
    "metrics cpu) or vector(1",
    'how\'s the cpu{job=~".+"}',
    'logs foo" } |~ ".*',
    'logs " |= "" or {job="x"}',
    'logs C:\\tmp\\"',
    "nr SELECT * FROM Transaction SINCE 1 week ago",
    # format strings
    "{0.__class__}",
    "ack {0.__init__.__globals__}",
    "%s%n%x%p",
    "logs %s%s%s%s",
    "{{7*7}} ${7*7} #{7*7}",
    # sizes
    "a" * 5000,
    "ack " + "9" * 5000,
    "snooze 1 " + "9" * 3000 + "m",
    "logs " + "x" * 5000,
    "metrics " + "(" * 3000,
    " ".join(["status"] * 800),
    "ack 1 " * 800,
    # emptiness, control and invisible characters
    "",
    "   ",
    "\n\n\n",
    "\t \r\n ",
    "ack\x00 1",
    "\x00\x01\x02\x1b[31m",
    "stat\x07us",
    "\u202eack 1",
    "st\u200batus",
    "\u2066ack\u2069 1",
    "\ufeffstatus",
    "\u200b\u200c\u200d",
    # emoji and other scripts
    "🔥🔥🔥",
    "👍",
    "🚨 ack 1 🚨",
    "ack ١",
    "ack ١٢",
    "ack １",
    "ack 一",
    # numbers
    "ack 99999999999999999999",
    "alerts 99999999999999999999",
    "snooze 99999999999999999999 1h",
    "resolve 1e309",
    "snooze 1 99999999999999999999999h",
    "snooze 1 -5m",
    "snooze 1 0m",
    "snooze 1 minus 5 minutes",
    "silence 1 9999d",
    "silence 1 -1h30m",
    "ack -1",
    "ack #0",
    # markup
    "<Response><Message>pwned</Message></Response>",
    "]]><Message>x</Message>",
    "&amp; &lt; &#0; &#x0;",
]


@pytest.fixture(scope="module")
def prom(tmp_path_factory):
    with prometheus(tmp_path_factory.mktemp("prometheus")) as server:
        yield server


@pytest.fixture
def loki():
    with FakeLoki() as fake:
        fake.push({"job": "shop"}, 'ERROR payment gateway said "try later"', ago=60)
        yield fake


@pytest.fixture
def hostile_app(settings, prom, loki):
    app = create_app(
        with_settings(
            settings,
            prometheus_url=prom.url,
            loki_url=loki.url,
            alertmanager_token=WEBHOOK_TOKEN,
            alertmanager_url=f"http://127.0.0.1:{free_port()}",  # nothing listens there
            rate_limit="1000 per minute",
        )
    )
    fire(app.test_client(), "HighCPU")
    yield app
    app.extensions["operator"].close()


def _answer(app, number: str, body: str) -> str | None:
    """The reply to `body`, after checking the response is well-formed one-segment TwiML."""
    response = Phone(app.test_client(), number).post(body)
    assert response.status_code == 200, response.data[:200]
    root = ET.fromstring(response.data)  # escaped: the body never becomes markup
    assert root.tag == "Response" and len(list(root)) <= 1
    text = reply_text(response.data)
    if text is not None:
        assert composer.segments(text) <= 1, text
        assert not LEAKS.search(text), text
    return text


@pytest.mark.parametrize("body", HOSTILE)
def test_a_viewer_gets_a_safe_one_segment_reply_and_changes_nothing(hostile_app, body):
    _answer(hostile_app, VIEWER, body)
    current = alert(hostile_app.extensions["operator"], 1)
    assert (current.status, current.acked_at, current.snoozed_until) == ("firing", None, None)


@pytest.mark.parametrize("body", HOSTILE)
def test_an_admin_gets_a_safe_one_segment_reply(hostile_app, body):
    _answer(hostile_app, ADMIN, body)


@pytest.mark.parametrize("body", HOSTILE)
def test_a_stranger_gets_nothing_whatever_they_send(hostile_app, body):
    assert _answer(hostile_app, STRANGER, body) is None
    current = alert(hostile_app.extensions["operator"], 1)
    assert (current.status, current.acked_at) == ("firing", None)


def test_sql_looking_text_is_stored_as_text_and_runs_nothing(hostile_app):
    services = hostile_app.extensions["operator"]
    for body in ("'; DROP TABLE messages; --", "resolve 1'); DELETE FROM alerts; --", "ack 1 OR 1=1"):
        _answer(hostile_app, VIEWER, body)
    assert {"messages", "alerts"} <= set(inspect(services.engine).get_table_names())
    with services.engine.connect() as conn:
        bodies = [r.body for r in conn.execute(select(audit.messages.c.body))]
    assert "'; DROP TABLE messages; --" in bodies
    assert alert(services, 1).status == "firing"


@pytest.mark.parametrize(
    "body",
    [
        'metrics up{job=~".+"} or vector(1)',
        "metrics count(up)",
        "metrics cpu) or vector(1",
        "metrics sum by (job) (up)",
        "metrics promql up",
        "metrics 1+1",
    ],
)
@pytest.mark.parametrize("number", [VIEWER, RESPONDER])
def test_raw_promql_is_refused_below_admin(hostile_app, number, body):
    assert _answer(hostile_app, number, body).startswith("Raw PromQL needs the admin role.")


def test_raw_promql_from_an_admin_runs_on_the_real_prometheus(hostile_app):
    assert _answer(hostile_app, ADMIN, 'metrics count(up{job=~".+"})') == "2"


# Every term is one `|= "..."` filter whose quotes and backslashes are escaped.
_SAFE_LOGQL = re.compile(r'\{job=~"\.\+"\}(?: \|= "(?:[^"\\]|\\.)*")*')


@pytest.mark.parametrize(
    "body",
    [
        'logs foo" } |~ ".*',
        'logs " |= "" or {job="x"}',
        'logs foo\\" |~ ".*',
        "logs \\",
        'logs foo } | json | line_format "{{.password}}"',
        "logs x\x00y\x1b",
        "logs `rm -rf /`",
    ],
)
def test_logql_injection_becomes_escaped_line_filters(hostile_app, loki, body):
    reply = _answer(hostile_app, ADMIN, body)
    sent = loki.requests[-1].query["query"]
    assert _SAFE_LOGQL.fullmatch(sent), sent
    assert reply.startswith("loki: 0 matches")  # Loki parsed it as plain filters


@pytest.mark.parametrize(
    "body, reply",
    [
        ("ack 99999999999999999999", "No alert #99999999999999999999. Text ALERTS for open ones."),
        ("snooze 1 -5m", "A duration cannot be negative; use e.g. 30m or 2h."),
        ("snooze 1 minus 5 minutes", "A duration cannot be negative; use e.g. 30m or 2h."),
        ("snooze 1 0m", "'0m' is no length of time; use e.g. 30m or 2h."),
        ("silence 1 9999d", "At most 30d for silence."),
        ("snooze 1 99999999999999999999999h", "At most 7d for snooze."),
        ("resolve 1e309", "'1e309' is not an alert id or a duration (e.g. 12, 30m, 2h)."),
        ("ack -1", "'-1' is not an alert id or a duration (e.g. 12, 30m, 2h)."),
        ("ack #0", "No alert #0. Text ALERTS for open ones."),
        ("ack ١٢", "No alert #12. Text ALERTS for open ones."),
        ("ack 一", "Could not read part of that; use plain digits, e.g. 'ack 12'."),
        ("resolve ❶❷", "Could not read part of that; use plain digits, e.g. 'resolve 12'."),
    ],
)
def test_impossible_numbers_are_refused_plainly_and_change_nothing(hostile_app, body, reply):
    assert _answer(hostile_app, RESPONDER, body) == reply
    current = alert(hostile_app.extensions["operator"], 1)
    assert (current.status, current.acked_at, current.snoozed_until) == ("firing", None, None)


@pytest.mark.parametrize(
    "body", ["ack ١", "ack １", "\u202eack 1", "\u2066ack\u2069 1", "🚨 ack 1 🚨", "ack\x00 1"]
)
def test_invisible_characters_emoji_and_other_digits_do_not_hide_the_command(hostile_app, body):
    assert _answer(hostile_app, RESPONDER, body).startswith("Acked #1 HighCPU")


@pytest.mark.parametrize("body", ["", "   ", "\n\n\n", "\u200b\u200c\u200d"])
def test_a_message_with_no_text_says_so(hostile_app, body):
    assert _answer(hostile_app, VIEWER, body) == "Empty message. Text HELP for the list of commands."


def test_a_message_of_only_emoji_is_told_that_words_are_read(hostile_app):
    assert _answer(hostile_app, VIEWER, "🔥🔥🔥").startswith("Operator reads words, not emoji")


@pytest.mark.parametrize("body", ["{0.__class__}", "%s%n%x%p", "{{7*7}} ${7*7} #{7*7}"])
def test_format_string_payloads_are_never_formatted(hostile_app, body):
    reply = _answer(hostile_app, ADMIN, body)
    assert "49" not in reply and "<class" not in reply and "object at" not in reply


@pytest.mark.parametrize(
    "body, name",
    [
        ("ack 1", "ack"),
        ("please ack it", "ack"),
        ("on it", "ack"),
        ("ack all", "ack"),
        ("snooze all 1h", "snooze"),
        ("mute 1 2h", "snooze"),
        ("silence 1 1h", "silence"),
        ("unsilence 1", "unsilence"),
        ("12 is fixed", "resolve"),
        ("close 1", "resolve"),
    ],
)
def test_a_viewer_cannot_act_on_alerts_however_it_is_phrased(hostile_app, body, name):
    assert _answer(hostile_app, VIEWER, body) == f"'{name}' needs the responder role; you are viewer."


def test_a_viewer_cannot_confirm_a_question_asked_to_someone_else(hostile_app):
    fire(hostile_app.test_client(), "DiskFull")
    assert _answer(hostile_app, RESPONDER, "ack all").startswith("Reply YES")
    assert _answer(hostile_app, VIEWER, "yes").startswith("Nothing to confirm")
    assert alert(hostile_app.extensions["operator"], 1).acked_at is None
