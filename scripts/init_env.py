"""Write .env from .env.example with a generated local auth token and secret key, a sample number and a local URL.

Used by `make run` on a fresh machine; an existing .env is never touched. PUBLIC_URL is where the
local server listens (PORT, default 5000), which is what `flask --app app sms` signs for.
"""

import os
import pathlib
import secrets
import sys

SAMPLE_NUMBER = "+15555550100:admin"


def main() -> int:
    target = pathlib.Path(".env")
    if target.exists():
        return 0
    public_url = f"http://127.0.0.1:{os.environ.get('PORT', '').strip() or '5000'}"
    lines = []
    for line in pathlib.Path(".env.example").read_text().splitlines():
        if line.startswith("TWILIO_AUTH_TOKEN="):
            line = f"TWILIO_AUTH_TOKEN={secrets.token_hex(16)}"
        elif line.startswith("AUTHORIZED_NUMBERS="):
            line = f"AUTHORIZED_NUMBERS={SAMPLE_NUMBER}"
        elif line.startswith("PUBLIC_URL="):
            line = f"PUBLIC_URL={public_url}"
        elif line.startswith("SECRET_KEY="):
            # Ready for the dashboard: setting DASHBOARD_PASSWORD is then enough to turn it on.
            line = f"SECRET_KEY={secrets.token_hex(32)}"
        lines.append(line)
    target.write_text("\n".join(lines) + "\n")
    print(
        f"wrote .env with a generated local TWILIO_AUTH_TOKEN and SECRET_KEY, AUTHORIZED_NUMBERS={SAMPLE_NUMBER} "
        f"and PUBLIC_URL={public_url}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
