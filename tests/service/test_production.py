"""production.py: the real gunicorn with 4 workers: shared rate limit, summed metrics, safe logs."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, text

from inbound.routes import STORE_DOWN
from tests.support.live_server import SignedClient, base_env, gunicorn
from tests.support.paths import REPO
from tests.support.phones import ADMIN, RESPONDER, STRANGER, TOKEN, reply_text
from tests.support.servers import free_port, fresh_postgres_database, redis_or_skip

pytestmark = pytest.mark.slow

LIMIT = 5
BURST = 24


def metric(url: str, name: str, **labels: str) -> float:
    body = requests.get(url + "/metrics", timeout=10).text
    total = 0.0
    for family in text_string_to_metric_families(body):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
    return total


def outcomes(database_url: str) -> dict[str, int]:
    engine = create_engine(database_url)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT outcome, count(*) FROM messages GROUP BY outcome")).all()
    engine.dispose()
    return dict(rows)


@pytest.mark.parametrize("backend", ["sqlite", "redis", "postgresql"])
def test_the_rate_limit_holds_exactly_across_four_workers_and_a_restart(tmp_path, backend):
    env = base_env(
        tmp_path,
        TWILIO_AUTH_TOKEN=TOKEN,
        AUTHORIZED_NUMBERS=f"{ADMIN}:admin,{RESPONDER}",
        RATE_LIMIT=f"{LIMIT} per 10 minutes",
    )
    drop = None
    if backend == "redis":
        env["REDIS_URL"] = redis_or_skip()
    elif backend == "postgresql":
        env["DATABASE_URL"], drop = fresh_postgres_database()
    try:
        with gunicorn(tmp_path, env) as url:
            client = SignedClient(url, TOKEN)
            with ThreadPoolExecutor(16) as pool:
                responses = list(pool.map(lambda _: client.post(ADMIN, "help"), range(BURST)))
            assert all(r.status_code == 200 for r in responses)
            replies = [reply_text(r.content) for r in responses]
            assert sum(1 for r in replies if r and r.startswith("Commands:")) == LIMIT
            assert [r for r in replies if r and r.startswith("Query limit")] == [
                f"Query limit reached ({LIMIT} per 10 minutes): queries resume in 10m. "
                "ack, snooze, silence, resolve, yes and no always work."
            ]
            assert replies.count(None) == BURST - LIMIT - 1
            # Another number is not affected by the first one's burst.
            assert reply_text(client.post(RESPONDER, "help").content).startswith("Commands:")
            forged = requests.post(url + "/sms", data={"From": ADMIN, "Body": "help"}, timeout=10)
            assert forged.status_code == 403
            # Every worker has its own process; /metrics must add them all up, whoever answers.
            for _ in range(6):
                assert metric(url, "operator_commands_total", command="help", outcome="ok") == LIMIT + 1
                assert metric(url, "operator_rate_limited_total") == BURST - LIMIT
                assert metric(url, "operator_signature_rejections_total") == 1
                assert metric(url, "operator_reply_latency_seconds_count") == BURST + 1
            # Handling alerts is never limited: an ack still runs and answers.
            nothing = "No alert was texted to you yet. Text ALERTS for open ones."
            assert reply_text(client.post(ADMIN, "ack").content) == nothing
        counts = outcomes(env["DATABASE_URL"])
        # The forged request is counted, not stored.
        assert counts == {"ok": LIMIT + 1, "rate_limited": BURST - LIMIT, "error": 1}
        # The counters live outside the workers: a restart does not hand out a fresh budget.
        with gunicorn(tmp_path, env, workers=2) as url:
            assert reply_text(SignedClient(url, TOKEN).post(ADMIN, "help").content) is None
    finally:
        if drop:
            drop()


def test_logs_hold_no_token_or_full_number_after_traffic_and_a_store_failure(tmp_path):
    database_url, drop = fresh_postgres_database()
    dropped = False
    env = base_env(
        tmp_path, TWILIO_AUTH_TOKEN=TOKEN, AUTHORIZED_NUMBERS=f"{ADMIN}:admin", DATABASE_URL=database_url
    )
    try:
        with gunicorn(tmp_path, env) as url:
            client = SignedClient(url, TOKEN)
            assert reply_text(client.post(ADMIN, "help").content).startswith("Commands:")
            client.post(ADMIN, f"status {TOKEN} call +15555550123")
            client.post(ADMIN, f"frobnicate {TOKEN}")
            client.post(STRANGER, "let me in")
            requests.post(
                url + "/sms", data={"From": ADMIN}, headers={"X-Twilio-Signature": TOKEN}, timeout=10
            )
            drop()
            dropped = True
            assert requests.get(url + "/healthz", timeout=10).status_code == 503
            assert reply_text(client.post(ADMIN, "help").content) == STORE_DOWN
            assert reply_text(client.post(STRANGER, "help").content) is None
    finally:
        if not dropped:
            drop()
    logs = (tmp_path / "logs" / "operator.log").read_text()
    console = "".join(p.read_text() for p in tmp_path.glob("gunicorn-*.log"))
    assert "Traceback" in logs and "store ping failed" in logs
    for text_ in (logs, console):
        assert TOKEN not in text_
        for number in (ADMIN, STRANGER, "+15555550123"):
            assert number not in text_
    assert "+1555***0100" in logs and "+1555***0199" in logs


def run_entry_point(tmp_path, args: list[str], **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=tmp_path,
        env=base_env(tmp_path, **env),
        capture_output=True,
        text=True,
        timeout=90,
    )


def assert_stopped_on(result: subprocess.CompletedProcess, variable: str) -> None:
    """Exit status 2 and exactly one line of ours, naming the variable; no traceback anywhere."""
    output = result.stdout + result.stderr
    ours = [line for line in output.splitlines() if line.startswith("Operator config error: ")]
    assert result.returncode == 2, output[-3000:]
    assert len(set(ours)) == 1 and variable in ours[0], output[-3000:]
    assert "Traceback" not in output


GUNICORN = ["gunicorn", "-c", str(REPO / "production.py"), "app:create_app()"]
BAD_SETTINGS = [
    ("TWILIO_AUTH_TOKEN", {}),
    ("RATE_LIMIT", {"TWILIO_AUTH_TOKEN": TOKEN, "RATE_LIMIT": "lots"}),
    ("DATABASE_URL", {"TWILIO_AUTH_TOKEN": TOKEN, "DATABASE_URL": "postgress://db/operator"}),
    # gunicorn itself parses WEB_CONCURRENCY when imported (a word fails there, before us).
    ("WEB_CONCURRENCY", {"TWILIO_AUTH_TOKEN": TOKEN, "WEB_CONCURRENCY": "0"}),
    ("WEB_THREADS", {"TWILIO_AUTH_TOKEN": TOKEN, "WEB_THREADS": "lots"}),
    ("BIND_ADDRESS", {"TWILIO_AUTH_TOKEN": TOKEN, "BIND_ADDRESS": "everywhere"}),
    ("PORT", {"TWILIO_AUTH_TOKEN": TOKEN, "PORT": "70000"}),
]


@pytest.mark.parametrize("variable, env", BAD_SETTINGS, ids=[v for v, _ in BAD_SETTINGS])
def test_gunicorn_stops_on_a_bad_setting_with_one_line_and_status_2(tmp_path, variable, env):
    assert_stopped_on(run_entry_point(tmp_path, GUNICORN, **{"PORT": str(free_port()), **env}), variable)


def test_a_bad_section_found_by_the_workers_stops_gunicorn_with_status_2_not_a_boot_loop(tmp_path):
    (tmp_path / "operator.yml").write_text("queries:\n  'two words': up\n")
    result = run_entry_point(
        tmp_path, GUNICORN, TWILIO_AUTH_TOKEN=TOKEN, PROMETHEUS_URL="http://127.0.0.1:9",
        OPERATOR_CONFIG=str(tmp_path / "operator.yml"), PORT=str(free_port()),
    )  # fmt: skip
    assert_stopped_on(result, "OPERATOR_CONFIG")


@pytest.mark.parametrize(
    "command, variable, env",
    [
        (["worker"], "TWILIO_AUTH_TOKEN", {}),
        (["worker"], "ALERT_LIMITS", {"TWILIO_AUTH_TOKEN": TOKEN, "ALERT_LIMITS": "often"}),
        (["db", "upgrade"], "DATABASE_URL", {"TWILIO_AUTH_TOKEN": TOKEN, "DATABASE_URL": "not a url"}),
        (["check"], "MONITOR_TIMEOUT", {"TWILIO_AUTH_TOKEN": TOKEN, "MONITOR_TIMEOUT": "soon"}),
    ],
)
def test_flask_commands_stop_on_a_bad_setting_with_one_line_and_status_2(tmp_path, command, variable, env):
    assert_stopped_on(run_entry_point(tmp_path, ["flask", "--app", "app", *command], **env), variable)


def test_the_worker_stops_on_a_bad_section_with_one_line_and_status_2(tmp_path):
    # A bad `rules:` keeps the last good rules instead (see test_rulefile); other sections stop it.
    (tmp_path / "operator.yml").write_text("heartbeats: 5\n")
    result = run_entry_point(
        tmp_path, ["flask", "--app", "app", "worker"], TWILIO_AUTH_TOKEN=TOKEN,
        OPERATOR_CONFIG=str(tmp_path / "operator.yml"),
    )  # fmt: skip
    assert_stopped_on(result, "heartbeats")


def test_a_postgres_url_as_libpq_users_write_it_serves(tmp_path):
    url, drop = fresh_postgres_database()
    try:
        libpq = url.replace("postgresql+psycopg://", "postgres://", 1)
        env = base_env(tmp_path, TWILIO_AUTH_TOKEN=TOKEN, AUTHORIZED_NUMBERS=ADMIN, DATABASE_URL=libpq)
        with gunicorn(tmp_path, env, workers=1) as base:
            assert reply_text(SignedClient(base, TOKEN).post(ADMIN, "help").content).startswith("Commands:")
        assert outcomes(url) == {"ok": 1}
    finally:
        drop()
