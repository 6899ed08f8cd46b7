"""An import-linter contract type that also sees the top-level modules (app.py, alerting.py, ...).

import-linter builds its graph from packages only, so the modules the product keeps at the top
level appear there as external names. This contract adds their own imports (read from the source
with `ast`, function-level imports included) before checking the layers like `layers` does.
"""

from __future__ import annotations

import ast
from pathlib import Path

from grimp import ImportGraph
from importlinter.contracts.layers import LayersContract
from importlinter.domain.contract import ContractCheck

ROOT = Path(__file__).resolve().parent.parent


def _imports(tree: ast.Module) -> list[tuple[str, int]]:
    """(dotted name, line) of everything a module imports, including the names of from-imports."""
    found: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found += [(f"{node.module}.{alias.name}", node.lineno) for alias in node.names]
            found.append((node.module, node.lineno))
    return found


def add_top_level_modules(graph: ImportGraph) -> None:
    """Give each top-level module of the project its own outgoing imports in `graph`."""
    top = {path.stem: path for path in ROOT.glob("*.py")}
    for name, path in sorted(top.items()):
        if name not in graph.modules:
            graph.add_module(name)
        lines = path.read_text().splitlines()
        for imported, line in _imports(ast.parse(path.read_text(), str(path))):
            target = imported if imported in graph.modules else None
            if target is None or target == name:
                continue
            if imported.split(".")[0] not in top and graph.is_module_squashed(imported.split(".")[0]):
                continue  # a third-party package
            graph.add_import(
                importer=name, imported=target, line_number=line, line_contents=lines[line - 1].strip()
            )


class TopLevelLayersContract(LayersContract):
    """`layers`, with the top-level modules' imports in the graph too."""

    def check(self, graph: ImportGraph, verbose: bool) -> ContractCheck:
        add_top_level_modules(graph)
        return super().check(graph, verbose)
