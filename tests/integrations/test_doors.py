"""POST /integrations/<name> for Alertmanager and Datadog senders: the /webhook/* path behind its own secret."""

from __future__ import annotations

import json

import pytest

from tests.support.apps import app_with, with_settings
from tests.support.integrations import (
    AM_KEY,
    DD_KEY,
    OG_KEY,
    PD_KEY,
    alerts,
    basic,
    entry,
    stored,
    with_integrations,
)
from tests.support.oncall import ALICE, CAROL, DAVE, payments_and_infra, texts
from tests.support.paths import PAYLOADS

AM_BODY = (PAYLOADS / "alertmanager_firing.json").read_bytes()
DD_BODY = (PAYLOADS / "datadog_custom_triggered.json").read_bytes()


@pytest.fixture
def settings(settings):
    return with_integrations(settings, entry("am"), entry("dd"))


def post(client, path, body, headers=None):
    return client.post(path, data=body, content_type="application/json", headers=headers or {})


@pytest.mark.parametrize(
    "path, headers",
    [
        ("/integrations/am", {"Authorization": f"Bearer {AM_KEY}"}),
        ("/integrations/am", basic(AM_KEY)),
        (f"/integrations/am?token={AM_KEY}", {}),
    ],
    ids=["bearer", "basic password", "token query"],
)
def test_the_secret_is_taken_as_bearer_basic_password_or_token(client, services, path, headers):
    answer = post(client, path, AM_BODY, headers)
    assert answer.status_code == 200 and answer.get_json()["new"] >= 1
    assert alerts(services)[0].source == "alertmanager"


def test_a_datadog_integration_takes_datadogs_payload(client, services):
    assert post(client, "/integrations/dd", DD_BODY, {"Authorization": f"Bearer {DD_KEY}"}).status_code == 200
    assert alerts(services)[0].source == "datadog"


@pytest.mark.parametrize(
    "path, headers",
    [
        ("/integrations/am", {}),
        ("/integrations/am", {"Authorization": "Bearer wrong"}),
        ("/integrations/am", {"Authorization": f"Bearer {DD_KEY}"}),  # another integration's secret
        ("/integrations/am?token=wrong", {}),
    ],
)
def test_a_wrong_secret_is_401_and_stores_nothing(client, services, path, headers):
    answer = post(client, path, AM_BODY, headers)
    assert answer.status_code == 401 and answer.get_json()["status"] == "error"
    assert stored(services) == (0, 0, 0)


def test_an_unknown_integration_is_404(client):
    assert (
        post(client, "/integrations/nope", AM_BODY, {"Authorization": f"Bearer {AM_KEY}"}).status_code == 404
    )


def test_todays_alertmanager_token_set_up_keeps_working_beside_integrations(settings):
    with app_with(with_settings(settings, alertmanager_token="old-token")) as app:
        answer = post(
            app.test_client(), "/webhook/alertmanager", AM_BODY, {"Authorization": "Bearer old-token"}
        )
        assert answer.status_code == 200 and answer.get_json()["new"] >= 1


def test_past_the_limit_429_with_retry_after(settings):
    with app_with(with_integrations(settings, entry("am", limit="1 per 1 minute"))) as app:
        client, auth = app.test_client(), {"Authorization": f"Bearer {AM_KEY}"}
        assert post(client, "/integrations/am", AM_BODY, auth).status_code == 200
        answer = post(client, "/integrations/am", AM_BODY, auth)
        assert answer.status_code == 429 and int(answer.headers["Retry-After"]) >= 1


def test_everything_from_an_integration_with_a_team_goes_to_that_team(settings):
    configured = with_integrations(settings, entry("am", team="payments"), sections=payments_and_infra())
    with app_with(configured) as app:
        post(app.test_client(), "/integrations/am", AM_BODY, {"Authorization": f"Bearer {AM_KEY}"})
        to = {t[0] for t in texts(app.extensions["operator"], "alert")}
        assert to == {ALICE} and not to & {CAROL, DAVE}


def test_a_sender_cannot_choose_the_team_with_its_own_label(settings):
    body = AM_BODY.replace(b'"alertname"', b'"integration_team": "payments", "alertname"')
    configured = with_integrations(settings, entry("am"), sections=payments_and_infra())
    with app_with(configured) as app:
        assert (
            post(
                app.test_client(), "/integrations/am", body, {"Authorization": f"Bearer {AM_KEY}"}
            ).status_code
            == 200
        )
        to = {t[0] for t in texts(app.extensions["operator"], "alert")}
        assert ALICE not in to


def test_secrets_never_reach_the_logs(caplog, settings):
    caplog.set_level("DEBUG")
    wrong = "wrong-secret-1234567890abcdef0123"
    configured = with_integrations(settings, entry("am"), entry("pd"), entry("og"))
    with app_with(configured) as app:
        client = app.test_client()
        post(client, f"/integrations/am?token={AM_KEY}", AM_BODY)
        post(client, f"/integrations/am?token={wrong}", AM_BODY)
        for key in (PD_KEY, wrong):
            body = {"routing_key": key, "event_action": "trigger", "payload": {"summary": "s", "source": "h"}}
            post(client, "/v2/enqueue", json.dumps(body))
        for key in (OG_KEY, wrong):
            post(client, "/v2/alerts", b'{"message": "m"}', {"Authorization": f"GenieKey {key}"})
    assert "integration" in caplog.text
    for secret in (AM_KEY, PD_KEY, OG_KEY, wrong):
        assert secret not in caplog.text
