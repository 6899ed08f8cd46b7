"""The machine-readable side of a benchmark: `--json PATH` writes its headline figures for report.py."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the headline figures here")


def write(path: Path | None, benchmark: str, figures: list[tuple[str, str, str]]) -> None:
    """`figures`: (what, value with its unit, target or ""), in the order a reader wants them."""
    if path is None:
        return
    rows = [{"figure": what, "value": value, "target": target} for what, value, target in figures]
    path.write_text(json.dumps({"benchmark": benchmark, "figures": rows}, indent=1) + "\n")
