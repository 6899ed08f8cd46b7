"""logging_config.py: console and rotating file, a request id per line, no secrets or numbers."""

from __future__ import annotations

import logging
from pathlib import Path

from prometheus_client import REGISTRY
from sqlalchemy import select

from inbound import audit
from tests.support.apps import app_with, with_settings
from tests.support.disks import fill, full_tmpfs
from tests.support.phones import ADMIN, TOKEN, Phone


def log_text(settings) -> str:
    for handler in logging.getLogger().handlers:
        handler.flush()
    return (Path(settings.log_dir) / "operator.log").read_text()


def test_every_command_gets_one_audit_line_with_the_request_id(app, settings, phone):
    response = phone.post("help", headers={"I-Twilio-Idempotency-Token": "abc123def456-rest"})
    assert response.status_code == 200
    lines = [line for line in log_text(settings).splitlines() if "operator.audit" in line]
    assert len(lines) == 1
    assert "[abc123def456]" in lines[0] and "command=help outcome=ok segments=1" in lines[0]
    assert "from=+1555***0100" in lines[0]


def test_secrets_and_numbers_are_redacted_even_inside_tracebacks(app, settings):
    log = logging.getLogger("operator.test")
    log.warning("token %s for %s", TOKEN, ADMIN)
    try:
        raise RuntimeError(f"auth failed with {TOKEN} calling +447700900123")
    except RuntimeError:
        log.exception("backend failed for 1-555-555-0100")
    text = log_text(settings)
    assert TOKEN not in text
    for number in (ADMIN, "+447700900123", "1-555-555-0100", "5555550100"):
        assert number not in text
    assert "[redacted]" in text and "+1555***0100" in text and "Traceback" in text


def test_a_message_body_never_reaches_the_log(app, settings, phone):
    phone.text(f"status {TOKEN} secret-body-words")
    phone.text("hello there", number="+15555550199")
    text = log_text(settings)
    assert "secret-body-words" not in text and TOKEN not in text
    assert "+15555550199" not in text and "+1555***0199" in text


def test_configuring_twice_does_not_duplicate_lines(settings, tmp_path):
    from tests.support.apps import app_with

    with app_with(settings), app_with(settings) as app:
        Phone(app.test_client()).text("help")
    audit = [line for line in log_text(settings).splitlines() if "operator.audit" in line]
    assert len(audit) == 1


def lost_lines() -> float:
    return REGISTRY.get_sample_value("operator_log_write_failures_total", {"handler": "file"}) or 0.0


def test_a_full_log_disk_costs_counted_lines_never_a_reply_or_a_stored_row(settings, tmp_path, capfd):
    with (
        full_tmpfs(tmp_path / "full-logs") as logs,
        app_with(with_settings(settings, log_dir=str(logs))) as app,
    ):
        before = lost_lines()
        phone = Phone(app.test_client())
        replies = [phone.text("help") for _ in range(3)]
        with app.extensions["operator"].engine.connect() as conn:
            stored = conn.execute(select(audit.messages.c.outcome)).scalars().all()
        assert all(r.startswith("Commands:") for r in replies)
        assert stored == ["ok", "ok", "ok"]  # the store's rows are the record
        assert lost_lines() - before >= 3  # at least each audit line
    err = capfd.readouterr().err
    assert err.count("cannot write the file log (OSError: [Errno 28] No space left on device)") == 1
    assert "--- Logging error ---" not in err and "Traceback" not in err


def test_lines_flow_again_once_the_disk_has_room(settings, tmp_path, capfd):
    with (
        full_tmpfs(tmp_path / "full-logs") as logs,
        app_with(with_settings(settings, log_dir=str(logs))) as app,
    ):
        phone = Phone(app.test_client())
        phone.text("help")
        (logs / "filler").unlink()
        phone.text("help")  # each line is flushed as it is written
        assert "command=help outcome=ok" in (logs / "operator.log").read_text()
        fill(logs)
        for _ in range(40):  # past what the log file's last page still holds
            phone.text("help")
    assert capfd.readouterr().err.count("cannot write the file log") == 2


def test_a_log_directory_that_cannot_be_created_does_not_stop_the_service(settings, tmp_path):
    with full_tmpfs(tmp_path / "full") as full:
        with app_with(with_settings(settings, log_dir=str(full / "a" / "b"))) as app:
            assert Phone(app.test_client()).text("help").startswith("Commands:")
