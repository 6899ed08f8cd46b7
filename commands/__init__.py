"""Command modules; importing this package registers every command."""

from commands import (
    core,  # noqa: F401
    queries,  # noqa: F401
)
