"""Logging set up once: console and a rotating file, a request id on every line, no secrets."""

from __future__ import annotations

import logging
import logging.handlers
import os

from flask import g, has_request_context

from config import Settings
from security import mask_numbers

FORMAT = "%(asctime)s %(levelname)s [%(request_id)s] %(name)s: %(message)s"


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = getattr(g, "request_id", "-") if has_request_context() else "-"
        return True


class RedactFilter(logging.Filter):
    """Last line of defence: mask phone numbers and blank out known secrets in any record."""

    def __init__(self, secrets: list[str]):
        super().__init__()
        self.secrets = [s for s in secrets if s and len(s) >= 6]

    def filter(self, record: logging.LogRecord) -> bool:
        # Every handler carries this filter; the record is shared, so redact it only once.
        if getattr(record, "_redacted", False):
            return True
        record._redacted = True
        message = record.getMessage()
        for secret in self.secrets:
            message = message.replace(secret, "[redacted]")
        record.msg, record.args = mask_numbers(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            text = record.exc_text
            for secret in self.secrets:
                text = text.replace(secret, "[redacted]")
            record.exc_text = mask_numbers(text)
        return True


def configure_logging(settings: Settings) -> None:
    """Replace the root handlers with Operator's; safe to call again (tests build many apps)."""
    secrets = [
        settings.twilio_auth_token,
        settings.twilio_webhook_shared_key,
        settings.newrelic_api_key,
        settings.custom_api_token,
        settings.alertmanager_token,
        settings.alertmanager_password,
        settings.datadog_token,
        settings.heartbeat_token,
    ]
    formatter = logging.Formatter(FORMAT)
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    os.makedirs(settings.log_dir, exist_ok=True)
    handlers.append(
        logging.handlers.RotatingFileHandler(
            os.path.join(settings.log_dir, "operator.log"), maxBytes=10_000_000, backupCount=5
        )
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_operator", False)]:
        root.removeHandler(old)
        old.close()
    for handler in handlers:
        handler._operator = True  # type: ignore[attr-defined]
        handler.setFormatter(formatter)
        handler.addFilter(RequestIdFilter())
        handler.addFilter(RedactFilter(secrets))
        root.addHandler(handler)
    root.setLevel(settings.log_level)
    # Neither FORMAT nor gunicorn's formats show the source line or thread: don't collect them for
    # every record (the logging HOWTO's "Optimization" switches; a third of an audit line's cost).
    logging._srcfile = None
    logging.logThreads = False
    logging.logMultiprocessing = False
    # urllib3 logs full URLs (with query strings) at DEBUG.
    logging.getLogger("urllib3").setLevel(logging.WARNING)
