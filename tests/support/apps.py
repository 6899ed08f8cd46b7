"""Apps built from variants of the test settings, always closed afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

from flask import Flask

from app import create_app
from config import Settings, load_file, parse_heartbeats


def with_settings(settings: Settings, **changes) -> Settings:
    return replace(settings, **changes)


def from_file(path) -> dict:
    """The settings of an operator.yml at `path`, read the way Settings.from_env reads it."""
    file = load_file(str(path))
    return {
        "operator_config": str(path),
        "file": file,
        "heartbeats": parse_heartbeats(file.get("heartbeats")),
    }


@contextmanager
def app_with(settings: Settings) -> Iterator[Flask]:
    app = create_app(settings)
    try:
        yield app
    finally:
        app.extensions["operator"].close()
