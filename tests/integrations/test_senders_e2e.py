"""A real Alertmanager's pagerduty_configs and opsgenie_configs, pointed at Operator, page the right on-call and resolve."""

from __future__ import annotations

from contextlib import ExitStack
from datetime import UTC, datetime, timedelta

import pytest

from app import create_app
from tests.support.alertmanager_server import serving, wait_for
from tests.support.apps import with_settings
from tests.support.integrations import OG_KEY, PD_KEY, alerts, entry, with_integrations
from tests.support.oncall import ALICE, BOB, CAROL, DAVE, payments_and_infra, texts
from tests.support.vendor_senders import alertmanager_for, failed_sends, post_alert, sent, vendor_config

pytestmark = pytest.mark.slow


@pytest.fixture
def stack(settings, tmp_path):
    """Operator on a real socket (pd for team payments, og routed by labels) and a real Alertmanager."""
    # Alice is on call in payments from an hour ago for a week; infra's on-call is Carol or Dave.
    start = f"{datetime.now(UTC) - timedelta(hours=1):%Y-%m-%dT%H:%M}+00:00"
    configured = with_integrations(
        with_settings(settings, rate_limit="1000 per minute"),
        entry("pd", team="payments"),
        entry("og"),
        sections=payments_and_infra(start=start),
    )
    with ExitStack() as stack:
        app = create_app(configured)
        stack.callback(app.extensions["operator"].close)
        base = stack.enter_context(serving(app))
        am = stack.enter_context(alertmanager_for(tmp_path, vendor_config(base, PD_KEY, OG_KEY)))
        yield app.extensions["operator"], am


def pages(services, name: str, kind: str = "alert") -> set[str]:
    return {to for to, body, _ in texts(services, kind) if name in body}


def test_pagerduty_configs_page_the_integrations_team_and_resolve(stack):
    services, am = stack
    labels = {"alertname": "DiskFull", "severity": "critical", "instance": "db-1:9100"}
    post_alert(am, labels, "Disk full on db-1")
    assert wait_for(lambda: pages(services, "DiskFull"), "the PagerDuty page") == {ALICE}
    (alert,) = alerts(services)
    assert alert.source == "pagerduty" and alert.status == "firing"
    post_alert(am, labels, "Disk full on db-1", resolved=True)
    wait_for(lambda: alerts(services)[0].status == "resolved", "the PagerDuty resolve")
    assert wait_for(lambda: pages(services, "", "recovery"), "the RESOLVED text") == {ALICE}
    assert not pages(services, "", "alert") & {BOB, CAROL, DAVE}
    assert sent(am, "pagerduty") >= 2 and failed_sends(am, "pagerduty") == 0


def test_opsgenie_configs_page_by_labels_and_close(stack):
    services, am = stack
    labels = {"alertname": "LatencyHigh", "receiver": "og", "instance": "api-1:9100"}
    post_alert(am, labels, "p99 above 2s")
    # No team label and no integration team: infra, the default team, is paged.
    paged = wait_for(lambda: pages(services, "LatencyHigh"), "the Opsgenie page")
    assert paged and paged <= {CAROL, DAVE}
    (alert,) = alerts(services)
    assert (alert.source, alert.severity) == ("opsgenie", "critical")  # priority P2
    post_alert(am, labels, "p99 above 2s", resolved=True)
    wait_for(lambda: alerts(services)[0].status == "resolved", "the Opsgenie close")
    # Alertmanager took every answer (the create, its message and description updates, the close).
    assert sent(am, "opsgenie") >= 2 and failed_sends(am, "opsgenie") == 0
