"""Inbound texts: the /sms webhook, the pipeline from a verified request to its reply, the audit.

A text goes: inbound.routes (signature) -> inbound.pipeline (store, limit) -> command_processor
-> commands -> monitors -> conversation.composer -> inbound.audit.
"""

from __future__ import annotations

from flask import Flask

from command_processor import CommandProcessor
from inbound.cli import parse_command, sms_command
from inbound.routes import bp


def init_app(app: Flask) -> None:
    # A `phrases:` entry that names no command stops start-up here, not at the first text.
    CommandProcessor(app.extensions["operator"]).check_phrases()
    app.register_blueprint(bp)
    app.cli.add_command(sms_command)
    app.cli.add_command(parse_command)
