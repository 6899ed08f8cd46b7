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
from tests.support.servers import fresh_postgres_database, redis_or_skip

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


def test_production_settings_stop_with_a_message_naming_the_variable(tmp_path):
    env = base_env(tmp_path, TWILIO_AUTH_TOKEN=TOKEN, WEB_CONCURRENCY="many", PORT="5000")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            str(REPO / "production.py"),
            "--check-config",
            "app:create_app()",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "WEB_CONCURRENCY" in result.stdout + result.stderr


def test_a_bad_setting_stops_the_workers_with_the_variable_named(tmp_path):
    env = base_env(tmp_path, TWILIO_AUTH_TOKEN=TOKEN, RATE_LIMIT="lots")
    with pytest.raises(RuntimeError) as excinfo, gunicorn(tmp_path, env, workers=1, timeout=30):
        pass
    assert "RATE_LIMIT" in str(excinfo.value)


def test_the_service_refuses_to_start_without_an_auth_token(tmp_path):
    env = base_env(tmp_path)
    with pytest.raises(RuntimeError) as excinfo, gunicorn(tmp_path, env, workers=1, timeout=30):
        pass
    assert "TWILIO_AUTH_TOKEN is required" in str(excinfo.value)
