"""Write .env from .env.example with a generated local auth token and a sample number.

Used by `make run` on a fresh machine; an existing .env is never touched.
"""

import pathlib
import secrets
import sys

SAMPLE_NUMBER = "+15555550100:admin"


def main() -> int:
    target = pathlib.Path(".env")
    if target.exists():
        return 0
    lines = []
    for line in pathlib.Path(".env.example").read_text().splitlines():
        if line.startswith("TWILIO_AUTH_TOKEN="):
            line = f"TWILIO_AUTH_TOKEN={secrets.token_hex(16)}"
        elif line.startswith("AUTHORIZED_NUMBERS="):
            line = f"AUTHORIZED_NUMBERS={SAMPLE_NUMBER}"
        lines.append(line)
    target.write_text("\n".join(lines) + "\n")
    print(f"wrote .env with a generated local TWILIO_AUTH_TOKEN and AUTHORIZED_NUMBERS={SAMPLE_NUMBER}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
