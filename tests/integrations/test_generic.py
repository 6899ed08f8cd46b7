"""POST /integrations/<name> for a generic webhook: GoAlert's generic fields, or the entry's own map."""

from __future__ import annotations

import json

import pytest

from app import create_app
from config import ConfigError
from tests.support.apps import with_settings
from tests.support.integrations import GW_KEY, alerts, entry, stored, with_integrations
from tests.support.oncall import texts

ZABBIX = {
    "fields": {"summary": "alert.title", "severity": "level", "dedup": "id", "details": "alert.body"},
    "resolve_when": {"state": ["ok", "resolved"]},
}


@pytest.fixture
def settings(settings):
    return with_integrations(settings, entry("gw"), entry("gw2", **ZABBIX))


def post(client, body, name="gw", form=False):
    url = f"/integrations/{name}?token={GW_KEY}" if name == "gw" else f"/integrations/{name}"
    headers = {} if name == "gw" else {"Authorization": f"Bearer {GW_KEY}2"}
    if form:
        return client.post(url, data=body, headers=headers)
    return client.post(url, data=json.dumps(body), content_type="application/json", headers=headers)


def test_goalerts_summary_details_and_dedup_open_an_alert(client, services):
    answer = post(client, {"summary": "Backup failed", "details": "nas-1: exit 2", "dedup": "backup"})
    assert answer.status_code == 200 and answer.get_json()["new"] == 1
    (alert,) = alerts(services)
    assert (alert.source, alert.name, alert.summary) == ("generic", "Backup failed", "nas-1: exit 2")
    assert texts(services, "alert")


def test_a_form_post_works_like_json(client, services):
    answer = post(client, {"summary": "Backup failed", "dedup": "backup"}, form=True)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert alerts(services)[0].name == "Backup failed"


def test_action_close_resolves_the_alert_with_the_same_dedup(client, services):
    post(client, {"summary": "Backup failed", "dedup": "backup"})
    answer = post(client, {"dedup": "backup", "action": "close"}, form=False)
    assert answer.status_code == 200
    assert alerts(services)[0].status == "resolved"


def test_without_dedup_the_summary_and_details_are_the_key(client, services):
    post(client, {"summary": "Backup failed", "details": "nas-1"})
    post(client, {"summary": "Backup failed", "details": "nas-1"})
    assert len(alerts(services)) == 1
    post(client, {"summary": "Backup failed", "details": "nas-1", "action": "close"})
    assert alerts(services)[0].status == "resolved"


def test_a_closed_dedup_that_fires_again_is_firing_again(client, services):
    post(client, {"summary": "Backup failed", "dedup": "backup"})
    post(client, {"dedup": "backup", "action": "close"})
    answer = post(client, {"summary": "Backup failed", "dedup": "backup"})
    assert answer.status_code == 200 and answer.get_json()["new"] == 1
    assert alerts(services)[-1].status == "firing"


def test_a_repeated_post_applies_to_the_open_alert_without_paging_again(client, services):
    post(client, {"summary": "Backup failed", "dedup": "backup"})
    before = len(texts(services, "alert"))
    post(client, {"summary": "Backup failed", "dedup": "backup"})
    assert len(alerts(services)) == 1 and len(texts(services, "alert")) == before


def test_a_generic_post_without_a_summary_is_400_and_stores_nothing(client, services):
    answer = post(client, {"details": "no summary"})
    assert answer.status_code == 400 and answer.get_json()["status"] == "error"
    assert "summary" in answer.get_json()["message"]
    assert stored(services) == (0, 0, 0)


def test_the_entrys_fields_map_reads_dotted_paths(client, services):
    body = {
        "alert": {"title": "Disk full", "body": "/var 98%"},
        "level": "critical",
        "id": 7,
        "state": "firing",
    }
    assert post(client, body, name="gw2").status_code == 200
    (alert,) = alerts(services)
    assert (alert.name, alert.summary, alert.severity) == ("Disk full", "/var 98%", "critical")


@pytest.mark.parametrize("state", ["ok", "resolved", "OK"])
def test_resolve_when_values_resolve_the_alert(client, services, state):
    post(client, {"alert": {"title": "Disk full"}, "id": 7, "state": "firing"}, name="gw2")
    post(client, {"alert": {"title": "Disk full"}, "id": 7, "state": state}, name="gw2")
    assert alerts(services)[0].status == "resolved"


@pytest.mark.parametrize(
    "extra, problem",
    [
        ({"fields": {"title": "x"}}, "integration 'gw': 'fields' has an unknown field 'title'"),
        ({"fields": {"summary": "a..b"}}, "integration 'gw': 'fields.summary' must be a dotted path"),
        ({"fields": ["summary"]}, "integration 'gw': 'fields' must be a mapping"),
        ({"resolve_when": {"state": "ok"}}, "integration 'gw': 'resolve_when.state' must be a list"),
        ({"resolve_when": ["ok"]}, "integration 'gw': 'resolve_when' must be a mapping"),
    ],
)
def test_a_bad_fields_or_resolve_when_is_one_config_error_naming_the_entry_and_key(settings, extra, problem):
    with pytest.raises(ConfigError, match=problem):
        create_app(with_integrations(settings, entry("gw", **extra)))


def test_fields_on_another_kind_is_refused_at_start(settings):
    file = {"integrations": [{"name": "am", "kind": "alertmanager", "key_env": "AM_KEY", "fields": {}}]}
    with pytest.raises(ConfigError, match="integration 'am': 'fields' is only for kind: generic"):
        create_app(with_settings(settings, file=file, integrations={"am": "k"}))


def test_a_form_that_is_not_utf8_is_400_and_stores_nothing(client, services):
    answer = client.post(
        f"/integrations/gw?token={GW_KEY}",
        data=b"summary=\xff\xfe",
        content_type="application/x-www-form-urlencoded",
    )
    assert answer.status_code == 400 and answer.get_json()["status"] == "error"
    assert stored(services) == (0, 0, 0)


def test_a_close_of_a_key_with_no_open_alert_changes_nothing(client, services):
    answer = post(client, {"dedup": "never-fired", "action": "close"})
    assert answer.status_code == 200
    assert alerts(services) == [] and texts(services) == []
