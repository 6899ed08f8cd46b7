"""Where the checkout and the captured payloads are, wherever a test runs from."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
PAYLOADS = REPO / "tests" / "payloads"
