"""Debian's Chromium driven by Playwright (never a downloaded browser), with screenshots kept."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.support.paths import REPO
from tests.support.servers import unavailable

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking"]
# Where screenshots land: CI keeps this folder (git ignores it).
ARTIFACTS = REPO / "test-artifacts"


@contextmanager
def chromium_page() -> Iterator[Any]:
    """A fresh page in a fresh context; skip (fail under CI) without Playwright or Chromium."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("playwright is not installed (pip install -r requirements-dev.txt)")
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        unavailable("chromium is not installed (apt-get install chromium)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            context = browser.new_context(accept_downloads=True)
            yield context.new_page()
        finally:
            browser.close()


def screenshot(page: Any, name: str, tmp: Path) -> Path:
    """Save a full-page screenshot under test-artifacts/ and the test's own tmp dir."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    shutil.copy(path, tmp / path.name)
    return path
