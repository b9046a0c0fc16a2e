"""Imports point one way: market ← db, flows, strategies, graphql_schema ← server."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).parent.parent
PACKAGES = {"market", "db", "flows", "strategies", "graphql_schema", "server"}
ALLOWED = {
    "market": set(),
    "db": {"market"},
    "flows": {"market", "db"},
    "strategies": {"market", "db"},
    "graphql_schema": {"market"},
    "server": PACKAGES,
}


def imported_packages(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found & PACKAGES


def test_every_package_imports_only_the_layers_below_it() -> None:
    offences = []
    for package, allowed in ALLOWED.items():
        for path in (ROOT / package).rglob("*.py"):
            extra = imported_packages(path) - allowed - {package}
            if extra:
                offences.append(f"{path.relative_to(ROOT)} imports {sorted(extra)}")
    assert offences == []
