"""`flask --app app sms TEXT`: text a running Operator exactly as Twilio would; `flask parse`: what a
text would be read as, without running anything."""

from __future__ import annotations

import time
import uuid
import xml.etree.ElementTree as ET
from typing import IO
from urllib.parse import urlsplit

import click
import requests
from flask import current_app
from flask.cli import with_appcontext
from twilio.request_validator import RequestValidator

from command_processor import CommandProcessor
from conversation import composer
from inbound.pipeline import MAX_BODY
from logging_config import show_console


@click.command("sms")
@click.argument("text")
@click.option("--from", "from_", default="", help="Sender number (default: first authorized).")
@click.option(
    "--url", default="", help="Operator's /sms (default: PUBLIC_URL's, else http://127.0.0.1:5000/sms)."
)
@click.option(
    "-v", "--verbose", is_flag=True, help="Also the start-up lines, and each reply's segments and time."
)
def sms_command(text: str, from_: str, url: str, verbose: bool) -> None:
    """Text Operator as Twilio would: a signed /sms request to a running server; prints the reply."""
    if verbose:
        show_console(held=True)
    settings = current_app.extensions["operator"].settings
    # `make run` writes PUBLIC_URL for the port it serves on: that is where the server listens.
    url = url or (settings.public_url + "/sms" if settings.public_url else "http://127.0.0.1:5000/sms")
    sender = from_ or settings.first_authorized
    if not sender:
        raise click.UsageError("no --from and AUTHORIZED_NUMBERS is empty")
    params = {
        "MessageSid": "SM" + uuid.uuid4().hex,
        "AccountSid": settings.twilio_account_sid or "AC" + "0" * 32,
        "From": sender,
        "To": settings.twilio_from_number or "+15005550006",
        "Body": text,
        "NumMedia": "0",
    }
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise click.UsageError(f"--url must look like http://127.0.0.1:5000/sms, not {url!r}")
    # The server checks the signature against PUBLIC_URL when set, so sign what it will check.
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    signed = settings.public_url + path if settings.public_url else url
    signature = RequestValidator(settings.twilio_auth_token).compute_signature(signed, params)
    started = time.monotonic()
    try:
        response = requests.post(url, data=params, headers={"X-Twilio-Signature": signature}, timeout=20)
    except requests.RequestException as exc:
        raise click.ClickException(f"could not reach {url}: {exc}") from None
    elapsed = time.monotonic() - started
    if response.status_code == 403:
        raise click.ClickException(
            f"HTTP 403 from {url}: signature refused; the server's TWILIO_AUTH_TOKEN or PUBLIC_URL "
            "differs from this one's"
        )
    if response.status_code != 200:
        raise click.ClickException(f"HTTP {response.status_code} from {url}")
    bodies = [m.text or "" for m in ET.fromstring(response.text).iter("Message")]
    if not bodies:
        click.echo(f"(no reply) [{elapsed * 1000:.0f} ms]", err=True)
    for body in bodies:
        click.echo(body)
        if verbose:
            click.echo(
                f"[{composer.segments(body)} segment(s), {len(body)} chars, {elapsed * 1000:.0f} ms]",
                err=True,
            )


@click.command("parse")
@with_appcontext
@click.argument("text", nargs=-1)
@click.option(
    "--file",
    "source",
    type=click.File("r", encoding="utf-8", errors="replace"),
    help="One phrasing per line ('-': stdin).",
)
def parse_command(text: tuple[str, ...], source: IO[str] | None) -> None:
    """Print what each phrasing is read as: canonical command, tab, confidence, tab, reason.

    Nothing runs and no backend is asked: only the words are read, as /sms reads them.
    """
    phrasings = [" ".join(text)] if text else []
    if source is not None:
        phrasings += [line.rstrip("\r\n") for line in source]
    if not phrasings:
        raise click.UsageError("give a phrasing, or --file - for one per line on stdin")
    processor = CommandProcessor(current_app.extensions["operator"])
    for phrasing in phrasings:
        reading = processor.interpret(composer.normalize(phrasing)[:MAX_BODY])
        reason = reading.reason
        if reading.runner_up is not None:
            reason += f"; or {reading.runner_up.canonical} ({reading.runner_up.confidence:.2f})"
        click.echo(f"{reading.canonical}\t{reading.confidence:.2f}\t{reason}")
