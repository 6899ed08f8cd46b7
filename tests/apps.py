"""Apps built from variants of the test settings, always closed afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from flask import Flask

from app import create_app
from config import Settings


@contextmanager
def app_with(settings: Settings) -> Iterator[Flask]:
    app = create_app(settings)
    try:
        yield app
    finally:
        app.extensions["operator"].close()
