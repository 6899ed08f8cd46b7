"""Command modules; importing this package registers every command."""

import commands.alerts  # noqa: F401
from commands import core  # noqa: F401
