"""logging_config.py: console and rotating file, a request id per line, no secrets or numbers."""

from __future__ import annotations

import logging
from pathlib import Path

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
