"""The dashboard in a real browser against the production gunicorn: what the team lead clicks through."""

from __future__ import annotations

import csv
import io
import re

import pytest
import requests

from tests.support.alerts import WEBHOOK_TOKEN
from tests.support.browser import chromium_page, screenshot
from tests.support.dashboard import PASSWORD, PASSWORD_HASH, SECRET, USER
from tests.support.live_server import SignedClient, base_env, gunicorn
from tests.support.phones import ADMIN, RESPONDER, TOKEN

pytestmark = pytest.mark.slow

HOSTILE = '<script>document.title="pwned"</script><b onmouseover=alert(1)>bold</b>'


def _fire(url: str, name: str, summary: str) -> int:
    body = {
        "version": "4",
        "groupKey": f'{{}}:{{alertname="{name}"}}',
        "status": "firing",
        "truncatedAlerts": 0,
        "commonLabels": {"alertname": name},
        "commonAnnotations": {"summary": summary},
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": name, "instance": "web-1:9100"},
                "annotations": {"summary": summary},
                "startsAt": "2026-01-01T00:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "fingerprint": name,
            }
        ],
    }
    response = requests.post(
        url + "/webhook/alertmanager",
        json=body,
        headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return response.json()["alerts"][0]


@pytest.fixture
def live(tmp_path):
    env = base_env(
        tmp_path,
        TWILIO_AUTH_TOKEN=TOKEN,
        AUTHORIZED_NUMBERS=f"{ADMIN}:admin,{RESPONDER}:responder",
        DASHBOARD_USER=USER,
        DASHBOARD_PASSWORD=PASSWORD_HASH,
        SECRET_KEY=SECRET,
        ALERTMANAGER_TOKEN=WEBHOOK_TOKEN,
    )
    with gunicorn(tmp_path / "server", env, workers=2) as url:
        yield url


def test_the_lead_logs_in_reads_the_log_opens_an_alert_texts_from_the_panel_and_exports(live, tmp_path):
    phone = SignedClient(live, TOKEN)
    assert phone.post(ADMIN, "help").status_code == 200
    assert phone.post(RESPONDER, HOSTILE).status_code == 200
    alert_id = _fire(live, "DiskFull", "disk <i>97%</i> full")
    with chromium_page() as page:
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(live + "/dashboard/")
        assert "/dashboard/login" in page.url
        page.fill("input[name=username]", USER)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(re.compile(r".*/dashboard/$"))

        # The overview: open alerts, and the three charts drawn (SVG bars, no script needed).
        assert page.locator("#open-alerts").inner_text().count("DiskFull") == 1
        assert page.locator("figure svg").count() == 3
        assert page.locator("#chart-texts rect.bar").count() == 24
        screenshot(page, "dashboard-overview", tmp_path)

        # The log: the hostile body is text on the page, never markup or a running script.
        page.click("text=Messages")
        body_cell = page.locator("#messages td.body", has_text="document.title")
        assert body_cell.first.inner_text().startswith("<script>")
        assert page.title() != "pwned" and page.locator("#messages b").count() == 0
        page.fill("input[name=number]", ADMIN)
        page.click("button:has-text('Filter')")
        page.wait_for_url(re.compile(r".*number=.*"))
        numbers = page.locator("#messages tbody tr td:nth-child(3)").all_inner_texts()
        assert numbers and set(numbers) == {ADMIN}
        screenshot(page, "dashboard-messages-filtered", tmp_path)

        # The CSV of that filter downloads with the rows shown.
        with page.expect_download() as download:
            page.click("#csv")
        rows = list(csv.DictReader(io.StringIO(open(download.value.path()).read())))
        assert rows and {r["number"] for r in rows} == {ADMIN}

        # An alert's timeline, reached from the overview.
        page.click("text=Overview")
        page.click(f"a:has-text('#{alert_id}')")
        timeline = page.locator("#timeline").inner_text()
        assert "received from alertmanager" in timeline and "alert queued for" in timeline
        assert page.locator(".summary").inner_text() == "disk <i>97%</i> full"
        screenshot(page, "dashboard-alert-timeline", tmp_path)

        # The phone panel: a text through the /sms pipeline, its reply on the page.
        page.click("text=Phone")
        page.select_option("select[name=number]", ADMIN)
        page.fill("textarea[name=body]", "help")
        page.click("button:has-text('Send')")
        reply = page.locator("#reply pre").inner_text()
        assert "status" in reply.lower()
        screenshot(page, "dashboard-phone", tmp_path)
        page.click("text=Messages")
        assert page.locator("#messages tbody tr").count() >= 4
        # The policy refuses inline script, and the page never needed any.
        assert not [e for e in errors if "Content Security Policy" in e]
