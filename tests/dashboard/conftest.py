from __future__ import annotations

import pytest

from app import create_app
from tests.support.alerts import WEBHOOK_TOKEN
from tests.support.apps import with_settings
from tests.support.dashboard import PASSWORD_HASH, SECRET, USER, login


@pytest.fixture
def settings(settings):
    return with_settings(
        settings,
        dashboard_user=USER,
        dashboard_password=PASSWORD_HASH,
        secret_key=SECRET,
        alertmanager_token=WEBHOOK_TOKEN,
        datadog_token=WEBHOOK_TOKEN,
    )


@pytest.fixture
def lead(client):
    """A client logged in to the dashboard."""
    assert login(client).status_code == 302
    return client


@pytest.fixture
def viewer_app(settings):
    app = create_app(with_settings(settings, dashboard_role="viewer"))
    yield app
    app.extensions["operator"].close()
