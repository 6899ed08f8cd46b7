"""`make run`'s .env: written from .env.example when missing; PORT and PUBLIC_URL kept in step.

A new .env gets a generated local auth token and secret key, a sample number, and PUBLIC_URL set
to where the local server listens (PORT, default 5000): that is what `flask --app app sms` signs
for. `make run PORT=N` (PORT in the environment) writes both PORT and that local PUBLIC_URL into an
existing .env, so a later plain `make run` serves where `flask sms` signs. Without PORT, a .env
whose local PUBLIC_URL names another port than PORT is reported in one line. A PUBLIC_URL that is
not on this host (behind a proxy: https://ops.example.com) is never touched or questioned.
"""

import os
import pathlib
import secrets
import sys
from urllib.parse import urlsplit

from dotenv import dotenv_values, set_key

SAMPLE_NUMBER = "+15555550100:admin"
DEFAULT_PORT = "5000"
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def local_url(port: str) -> str:
    return f"http://127.0.0.1:{port}"


def local_port(public_url: str) -> str | None:
    """The port of a PUBLIC_URL on this host, "" for an empty one, None for one elsewhere."""
    if not public_url.strip():
        return ""
    try:
        parts = urlsplit(public_url.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.hostname not in LOCAL_HOSTS:
        return None
    return str(port or (443 if parts.scheme == "https" else 80))


def create(target: pathlib.Path, port: str) -> None:
    lines = []
    for line in pathlib.Path(".env.example").read_text().splitlines():
        if line.startswith("TWILIO_AUTH_TOKEN="):
            line = f"TWILIO_AUTH_TOKEN={secrets.token_hex(16)}"
        elif line.startswith("AUTHORIZED_NUMBERS="):
            line = f"AUTHORIZED_NUMBERS={SAMPLE_NUMBER}"
        elif line.startswith("PUBLIC_URL="):
            line = f"PUBLIC_URL={local_url(port)}"
        elif line.startswith("PORT="):
            line = f"PORT={port}"
        elif line.startswith("SECRET_KEY="):
            # Ready for the dashboard: setting DASHBOARD_PASSWORD is then enough to turn it on.
            line = f"SECRET_KEY={secrets.token_hex(32)}"
        lines.append(line)
    target.write_text("\n".join(lines) + "\n")
    print(
        f"wrote .env with a generated local TWILIO_AUTH_TOKEN and SECRET_KEY, AUTHORIZED_NUMBERS={SAMPLE_NUMBER}, "
        f"PORT={port} and PUBLIC_URL={local_url(port)}"
    )


def move(target: pathlib.Path, port: str, public_url: str) -> None:
    """Write PORT, and PUBLIC_URL when it is this host's, to an existing .env."""
    written = [f"PORT={port}"]
    set_key(target, "PORT", port, quote_mode="never")
    if local_port(public_url) is not None and public_url != local_url(port):
        set_key(target, "PUBLIC_URL", local_url(port), quote_mode="never")
        written.append(f"PUBLIC_URL={local_url(port)}")
    print(f"wrote {' and '.join(written)} to .env")


def main() -> int:
    target = pathlib.Path(".env")
    given = os.environ.get("PORT", "").strip()
    if given and not (given.isdigit() and 1 <= int(given) <= 65535):
        print(f"PORT must be a whole number from 1 to 65535, not {given!r}", file=sys.stderr)
        return 2
    if not target.exists():
        create(target, given or DEFAULT_PORT)
        return 0
    values = dotenv_values(target)
    port = (values.get("PORT") or "").strip() or DEFAULT_PORT
    public_url = (values.get("PUBLIC_URL") or "").strip()
    if given:
        if given != port or local_port(public_url) not in (None, given):
            move(target, given, public_url)
        return 0
    signs_for = local_port(public_url)
    if signs_for and signs_for != port:
        print(
            f".env: the server listens on PORT={port} but PUBLIC_URL={public_url} signs for port {signs_for}; "
            f"`make run PORT={port}` (or PORT={signs_for}) sets both",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
