"""`flask integrations`: each integration's URL and the snippet to paste into its sender, secrets masked."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import with_appcontext

from core.timeutil import humanize
from incidents.sources.generic import Spec
from integrations.entries import Integration, Kind


def masked(entry: Integration) -> str:
    """How a snippet shows the secret: where it is, never what it is."""
    return f"<the value of {entry.key_env}>"


def snippet(entry: Integration, base: str) -> tuple[str, str]:
    """(the URL the sender calls, what to paste into the sender's configuration)."""
    secret = masked(entry)
    if entry.kind == Kind.PAGERDUTY:
        url = f"{base}/v2/enqueue"
        text = f"pagerduty_configs:\n  - url: {url}\n    routing_key: {secret}\n    send_resolved: true"
    elif entry.kind == Kind.OPSGENIE:
        url = f"{base}/integrations/{entry.name}/"
        text = (
            f"opsgenie_configs:\n  - api_url: {url}\n    api_key: {secret}\n"
            "    send_resolved: true\n    update_alerts: true"
        )
    elif entry.kind == Kind.ALERTMANAGER:
        url = f"{base}/integrations/{entry.name}"
        text = (
            f"webhook_configs:\n  - url: {url}\n    send_resolved: true\n    http_config:\n"
            f"      authorization:\n        type: Bearer\n        credentials: {secret}"
        )
    elif entry.kind == Kind.GRAFANA:
        url = f"{base}/integrations/{entry.name}"
        text = (
            f"Grafana contact point -> Integration: Webhook\nURL: {url}\nHTTP Method: POST\n"
            f"Basic Authentication Username: grafana\nBasic Authentication Password: {secret}\n"
            "(or, instead of Basic: Authorization Header - Scheme: Bearer,\n"
            f" Authorization Header - Credentials: {secret})"
        )
    elif entry.kind == Kind.GENERIC:
        url = f"{base}/integrations/{entry.name}"
        auth = f'-H "Authorization: Bearer {secret}"'
        text = (
            f"curl -fsS {url} {auth} \\\n  -d summary='Backup failed on nas-1' -d details='exit 2' -d dedup=backup\n"
            f"curl -fsS {url} {auth} -d dedup=backup -d action=close"
        )
        if entry.spec != Spec():
            text += "\n(this integration reads its own fields: see fields:/resolve_when: in operator.yml)"
    else:
        url = f"{base}/integrations/{entry.name}"
        text = f"Datadog webhook URL: {url}\nCustom header: Authorization: Bearer {secret}"
    return url, text


@click.command("integrations")
@with_appcontext
def integrations_command() -> None:
    """List each integration of operator.yml with its URL and the snippet for its sender."""
    services = current_app.extensions["operator"]
    entries: dict[str, Integration] = current_app.extensions["integrations.entries"]
    base = services.settings.public_url or "https://<PUBLIC_URL>"
    if not entries:
        click.echo("No integrations: add an integrations: section to operator.yml (docs/alert-sources.md).")
        return
    if not services.settings.public_url:
        click.echo("PUBLIC_URL is not set: the URLs below show where it goes.\n")
    for entry in entries.values():
        url, text = snippet(entry, base)
        team = f", team {entry.team}" if entry.team else ""
        limit = f", limit {entry.limit}" if entry.limit else ""
        quiet = f", expect every {humanize(entry.expect_every)}" if entry.expect_every else ""
        click.echo(f"{entry.name} ({entry.kind}{team}{limit}{quiet})\n  URL: {url}")
        click.echo("  " + text.replace("\n", "\n  ") + "\n")
