"""Command modules; importing this package registers every command.

The import order is the order HELP lists them: everyday queries first, alert handling next.
"""

# isort: off
from commands import core  # noqa: F401
from commands import queries  # noqa: F401
from commands import alerts  # noqa: F401
from commands import maintenance  # noqa: F401
from commands import oncall  # noqa: F401
# isort: on
