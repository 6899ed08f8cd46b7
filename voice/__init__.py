"""Voice calls about alerts: what Twilio reads out, the keypresses, and the call's progress.

The worker places calls queued with `outbox.calls.enqueue_call`; Twilio then fetches
/voice/answer, posts the key pressed to /voice/gather and reports progress to /voice/status,
each signed like /sms (security.VOICE_FIELDS).
"""

from __future__ import annotations

from flask import Flask

from voice.routes import bp


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
