"""Command modules; importing this package registers every command."""

from commands import alerts, core, queries  # noqa: F401
