"""Floods cannot erase the audit trail: refusals on every door are logged once per source and
interval with a count, and several processes share one log file without rotating over each other."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import security
from tests.support.alerts import WEBHOOK_TOKEN
from tests.support.apps import app_with, with_settings
from tests.support.dashboard import PASSWORD_HASH, SECRET, csrf_token
from tests.support.paths import REPO
from tests.support.phones import ADMIN, Phone

HEARTBEAT_TOKEN = "heartbeat-token-0123456789"
FLOOD = 150


def flood_every_door(client) -> dict[str, int]:
    """FLOOD refused requests at each door, from one source; the status each answered."""
    bad = {"Authorization": "Bearer wrong"}
    doors = {
        "/webhook/alertmanager": lambda: client.post("/webhook/alertmanager", json={}, headers=bad),
        "/webhook/datadog": lambda: client.post("/webhook/datadog", json={}, headers=bad),
        "/heartbeat/": lambda: client.get("/heartbeat/nightly?token=wrong"),
        "/sms": lambda: client.post("/sms", data={"Body": "x"}, headers={"X-Twilio-Signature": "forged"}),
        "/sms/status": lambda: client.post("/sms/status", data={"MessageSid": "SM1"}),
        "/voice": lambda: client.post("/voice/answer?call=1", data={"CallSid": "CA" + "0" * 32}),
        "/metrics": lambda: client.get("/metrics", environ_overrides={"REMOTE_ADDR": "203.0.113.9"}),
    }
    answered = {}
    for door, knock in doors.items():
        for _ in range(FLOOD):
            answered[door] = knock().status_code
    token = csrf_token(client)
    for _ in range(12):  # the login's own limit answers most of these with 429
        data = {"csrf_token": token, "username": "lead", "password": "guess"}
        answered["/dashboard/login"] = client.post("/dashboard/login", data=data).status_code
    return answered


def test_a_flood_on_every_door_costs_a_few_lines_and_the_audit_line_stays(settings, caplog):
    flooded = with_settings(
        settings, alertmanager_token=WEBHOOK_TOKEN, datadog_token=WEBHOOK_TOKEN, heartbeat_token=HEARTBEAT_TOKEN,
        dashboard_password=PASSWORD_HASH, secret_key=SECRET,
    )  # fmt: skip
    caplog.set_level(logging.INFO)
    with app_with(flooded) as app:
        client = app.test_client()
        assert Phone(client, ADMIN).text("help").startswith("Commands:")
        answered = flood_every_door(client)
    assert all(code in (401, 403, 429) for code in answered.values()), answered
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    # One line per door and source: not one per refused request.
    assert len(warnings) <= 2 * (len(answered)), warnings
    for door in ("/webhook/alertmanager", "/heartbeat/", "/metrics", "/dashboard/login", "/sms/status"):
        assert any(door in w for w in warnings), (door, warnings)
    for handler in logging.getLogger().handlers:
        handler.flush()
    text = (Path(settings.log_dir) / "operator.log").read_text()
    assert "operator.audit" in text and "command=help" in text


def test_each_source_gets_its_own_line_and_the_next_interval_tells_how_many_were_not_written(caplog):
    caplog.set_level(logging.WARNING, logger="security")
    log = security.RefusalLog(every=0.2, sources=3)
    for _ in range(50):
        for source in ("192.0.2.1", "192.0.2.2"):
            log.warn(
                "/webhook/alertmanager",
                source,
                "refused %s from %s: bad token",
                "/webhook/alertmanager",
                source,
            )
    assert len(caplog.records) == 2
    for i in range(10, 30):  # more sources than an interval names apart
        log.warn("/webhook/alertmanager", f"192.0.2.{i}", "refused a webhook: bad token")
    assert len(caplog.records) == 4  # one more source, then one line for all the others
    time.sleep(0.25)
    log.warn("/heartbeat/", "192.0.2.1", "refused %s from %s: bad token", "/heartbeat/", "192.0.2.1")
    lines = [r.getMessage() for r in caplog.records[4:]]
    assert any("49 more" in line and "192.0.2.1" in line for line in lines), lines
    assert any("49 more" in line and "192.0.2.2" in line for line in lines), lines
    assert any("18 more" in line and "other sources" in line for line in lines), lines
    assert "/heartbeat/ from 192.0.2.1" in lines[-1]


WRITER = textwrap.dedent(
    """
    import logging, os, sys, time
    sys.path.insert(0, sys.argv[1])
    from logging_config import FileHandler
    handler = FileHandler(sys.argv[2], maxBytes=4000, backupCount=400)
    log = logging.getLogger("w")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    while not os.path.exists(sys.argv[2] + ".go"):  # every writer starts at once
        time.sleep(0.005)
    for i in range(LINES):
        log.info("writer %s line %04d %s", sys.argv[3], i, "x" * 20)
    handler.close()
    """
).replace("LINES", "800")


def test_several_processes_share_one_rotating_log_without_losing_or_clobbering_lines(tmp_path):
    path = tmp_path / "operator.log"
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(REPO), str(path), str(n)]) for n in range(4)
    ]
    time.sleep(1.0)
    (tmp_path / "operator.log.go").touch()
    assert all(w.wait(timeout=60) == 0 for w in writers)
    (tmp_path / "operator.log.go").unlink()
    files = [
        f
        for f in tmp_path.glob("operator.log*")
        if f.name[len("operator.log") :][1:].isdigit() or f.name == "operator.log"
    ]
    lines = [line for f in files for line in f.read_text().splitlines()]
    assert len(lines) == 4 * 800 and len(set(lines)) == 4 * 800  # every line, once
    rotated = [f for f in files if f.name != "operator.log"]
    assert len(rotated) >= 5
    assert all(f.stat().st_size >= 3000 for f in rotated), [f.stat().st_size for f in rotated]
