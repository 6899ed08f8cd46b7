"""Outbound texts: the durable queue, the backends that send, the sender, delivery reports.

Everything that texts a person calls `enqueue` (outbox.queue) inside its own transaction; the
worker runs `Sender`; Twilio's StatusCallback lands on `outbox.delivery`.
"""

from __future__ import annotations

from flask import Flask

from monitors.checkup import add_check
from outbox.backends import TwilioAccount
from outbox.delivery import bp


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    add_check(app, "twilio", TwilioAccount(app.extensions["operator"].settings))
