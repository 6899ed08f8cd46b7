"""Fixtures only: a checkout-proof working directory, settings -> app -> client, and a phone.

The helpers these build on (numbers, Phone, with_settings, ...) live in tests/support/.
"""

from __future__ import annotations

import pytest

from app import create_app
from config import Settings
from tests.support.phones import ADMIN, RESPONDER, TOKEN, VIEWER, Phone


@pytest.fixture(autouse=True)
def outside_the_checkout(tmp_path, monkeypatch):
    """Run every test from its own empty directory.

    The app reads ./operator.yml and ./.env relative to the current directory, so a developer's
    own files in the checkout must never decide what a test sees.
    """
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(
        twilio_auth_token=TOKEN,
        twilio_account_sid="AC" + "1" * 32,
        twilio_from_number="+15005550006",
        # What the test client's requests reach, so Phone signs what the app checks.
        public_url="http://localhost",
        authorized={ADMIN: "admin", RESPONDER: "responder", VIEWER: "viewer"},
        database_url=f"sqlite:///{tmp_path}/operator.db",
        log_dir=str(tmp_path / "logs"),
        reply_deadline=5.0,
    )


@pytest.fixture
def app(settings):
    app = create_app(settings)
    yield app
    app.extensions["operator"].close()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def services(app):
    return app.extensions["operator"]


@pytest.fixture
def phone(client) -> Phone:
    return Phone(client)
