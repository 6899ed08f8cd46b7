"""Logging set up once: console and a rotating file shared by every process, a request id on every line, no secrets."""

from __future__ import annotations

import fcntl
import logging
import logging.handlers
import os
import sys
from collections import deque

from flask import g, has_request_context
from prometheus_client import Counter

from config import Settings
from security import mask_numbers

FORMAT = "%(asctime)s %(levelname)s [%(request_id)s] %(name)s: %(message)s"

# The log is not the record: every request is a row in the store before it is answered, so a log
# line that cannot be written (a full disk) is counted here and the request goes on.
LOG_WRITE_FAILURES = Counter(
    "operator_log_write_failures_total",
    "Log lines a handler could not write (full or broken log disk)",
    ["handler"],
)


class CountedFailures(logging.Handler):
    """A handler whose lost lines are counted, with one stderr line per outage instead of a traceback per line."""

    label = "console"
    failing = False
    _lost = False

    def emit(self, record: logging.LogRecord) -> None:
        # Handler.handle holds self.lock around emit (and so handleError): the flags need no lock.
        self._lost = False
        super().emit(record)
        if not self._lost:
            self.failing = False  # written again: a later outage gets its own stderr line

    def handleError(self, record: logging.LogRecord) -> None:
        self._lost = True
        LOG_WRITE_FAILURES.labels(self.label).inc()
        if self.failing:
            return
        self.failing = True
        error = sys.exc_info()[1]
        try:
            sys.stderr.write(
                f"operator: cannot write the {self.label} log ({error.__class__.__name__}: {error}); "
                "lines are dropped and counted in operator_log_write_failures_total until it works again\n"
            )
        except (OSError, ValueError):
            pass  # stderr is broken or closed too: the counter is all that is left


class ConsoleHandler(CountedFailures, logging.StreamHandler):
    pass


class SharedRotatingFile(logging.handlers.WatchedFileHandler):
    """One log file that every gunicorn worker (and the worker process) appends to, rotated by
    size once, by whichever process finds it full.

    RotatingFileHandler assumes it is the file's only writer: with several processes, each rotates
    on its own count, renames files another still writes to, and the rotations clobber each other
    (lost lines, rotated files of a few bytes). Per-process files would scatter one request's
    lines and pile up with every restart; WatchedFileHandler alone leaves the size to a logrotate
    that a container or `make run` does not have. So: appends (O_APPEND, a line at a time), a
    rotation under an exclusive lock on `<file>.lock` that re-checks the size first (the others
    waiting on the lock then find a fresh file and do nothing), and, as WatchedFileHandler does,
    every process reopens the path when the file it held was rotated away. An external logrotate
    still works: the file is reopened after it moves.
    """

    def __init__(self, filename: str, maxBytes: int = 0, backupCount: int = 0, delay: bool = False):  # noqa: N803 - RotatingFileHandler's names
        super().__init__(filename, delay=delay)
        self.max_bytes, self.backups = maxBytes, backupCount

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._rotate_if_full()
            self.reopenIfNeeded()
            logging.FileHandler.emit(self, record)  # opens the file first when it is not open yet
        except Exception:  # noqa: BLE001 - a full disk costs this line (counted), never the request
            self.handleError(record)

    def _size(self) -> int:
        try:
            return os.stat(self.baseFilename).st_size
        except FileNotFoundError:
            return 0

    def _rotate_if_full(self) -> None:
        if self.max_bytes <= 0 or self.backups <= 0 or self._size() < self.max_bytes:
            return
        with open(self.baseFilename + ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                if self._size() < self.max_bytes:
                    return  # another process rotated it while this one waited
                for n in range(self.backups - 1, 0, -1):
                    older = f"{self.baseFilename}.{n}"
                    if os.path.exists(older):
                        os.replace(older, f"{self.baseFilename}.{n + 1}")
                os.replace(self.baseFilename, self.baseFilename + ".1")
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
        # This process's stream now points at .1: reopenIfNeeded opens the new file.


class FileHandler(CountedFailures, SharedRotatingFile):
    label = "file"


class OnceFormatter(logging.Formatter):
    """Formats a record once for every handler that shares it (console and file)."""

    def format(self, record: logging.LogRecord) -> str:
        line = getattr(record, "_operator_line", None)
        if line is None:
            line = record._operator_line = super().format(record)
        return line


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


class HoldQuiet(logging.Filter):
    """Holds a console's lines below WARNING back, for a command that answers on the console itself.

    `flask sms` prints the reply and nothing else; the start-up and migration lines it held are
    shown with -v (show_console). The file log still gets every line.
    """

    def __init__(self) -> None:
        super().__init__()
        self.held: deque[logging.LogRecord] = deque(maxlen=200)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING:
            return True
        self.held.append(record)
        return False


def show_console(held: bool) -> None:
    """Show every console line from now on, and with `held` first the ones held back so far."""
    for handler in logging.getLogger().handlers:
        for hold in [f for f in handler.filters if isinstance(f, HoldQuiet)]:
            handler.removeFilter(hold)
            for record in hold.held if held else ():
                handler.handle(record)


def configure_logging(settings: Settings, quiet_console: bool = False) -> None:
    """Replace the root handlers with Operator's; safe to call again (tests build many apps).

    With `quiet_console` the console shows only warnings and errors until show_console.
    """
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
    formatter = OnceFormatter(FORMAT)
    handlers: list[logging.Handler] = [ConsoleHandler()]
    try:
        os.makedirs(settings.log_dir, exist_ok=True)
    except OSError:
        pass  # the file handler's first line fails and is counted; the service still starts
    # delay: the file opens at the first line, so a disk too full to create it costs lines, not the start.
    handlers.append(
        FileHandler(
            os.path.join(settings.log_dir, "operator.log"), maxBytes=10_000_000, backupCount=5, delay=True
        )
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_operator", False)]:
        root.removeHandler(old)
        try:
            old.close()
        except OSError:
            pass  # its last buffered lines are lost with the full disk; the store has the record
    for handler in handlers:
        handler._operator = True  # type: ignore[attr-defined]
        handler.setFormatter(formatter)
        handler.addFilter(RequestIdFilter())
        handler.addFilter(RedactFilter(secrets))
        root.addHandler(handler)
    if quiet_console:
        # Last, so a held line is already redacted when it is shown.
        handlers[0].addFilter(HoldQuiet())
    root.setLevel(settings.log_level)
    # Neither FORMAT nor gunicorn's formats show the source line or thread: don't collect them for
    # every record (the logging HOWTO's "Optimization" switches; a third of an audit line's cost).
    logging._srcfile = None
    logging.logThreads = False
    logging.logMultiprocessing = False
    # urllib3 logs full URLs (with query strings) at DEBUG.
    logging.getLogger("urllib3").setLevel(logging.WARNING)
