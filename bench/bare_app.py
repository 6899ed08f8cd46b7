"""The baseline for sms_throughput.py: a bare Flask route answering fixed TwiML, nothing else."""

from __future__ import annotations

from flask import Flask, Response

TWIML = (
    '<?xml version="1.0" encoding="UTF-8"?><Response><Message>Commands: status, more.</Message></Response>'
)


def create_app() -> Flask:
    app = Flask(__name__)

    @app.post("/sms")
    def sms() -> Response:
        return Response(TWIML, mimetype="application/xml")

    @app.get("/livez")
    def livez() -> tuple[str, int]:
        return "ok", 200

    return app
