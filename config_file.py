"""The optional YAML file (`OPERATOR_CONFIG`, else ./operator.yml if present).

It holds named queries, API endpoints and alert rules. This module only reads and shape-checks
the top level; each feature validates its own section and raises ConfigError naming the problem.
"""

from __future__ import annotations

import os
from typing import Any

import yaml

from config import ConfigError, Settings

DEFAULT_PATH = "operator.yml"
SECTIONS = ("queries", "nrql", "api", "rules", "database")


def config_path(settings: Settings) -> str:
    """The file in use, or "" when there is none."""
    if settings.operator_config:
        return settings.operator_config
    return DEFAULT_PATH if os.path.exists(DEFAULT_PATH) else ""


def load(settings: Settings) -> dict[str, Any]:
    """The parsed file as a dict of sections ({} without a file)."""
    path = config_path(settings)
    if not path:
        return {}
    try:
        with open(path, encoding="utf-8") as handle:
            data = yaml.safe_load(handle) or {}
    except OSError as exc:
        raise ConfigError(f"OPERATOR_CONFIG: cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"OPERATOR_CONFIG: {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"OPERATOR_CONFIG: {path} must be a mapping of sections")
    unknown = sorted(set(data) - set(SECTIONS))
    if unknown:
        raise ConfigError(
            f"OPERATOR_CONFIG: {path} has unknown section(s) {', '.join(unknown)}; "
            f"known: {', '.join(SECTIONS)}"
        )
    return data
