"""Imports point one way: market ← db ← flows, strategies ← graphql_schema ← server.

The GraphQL layer translates the types of the layers below it (strategies' backtests, the
store's records) and reaches no adapter: it imports no `db` module that talks to a database.
"""

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
    "graphql_schema": {"market", "db", "strategies"},
    "server": PACKAGES,
}


#: The `db` modules with no I/O of their own: interfaces and the types they carry.
DB_TYPES = {"db.store", "db.candle_store", "db.indicator_store", "db.backtest_store"}


def imported_modules(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def imported_packages(path: Path) -> set[str]:
    return {module.split(".")[0] for module in imported_modules(path)} & PACKAGES


def test_every_package_imports_only_the_layers_below_it() -> None:
    offences = []
    for package, allowed in ALLOWED.items():
        for path in (ROOT / package).rglob("*.py"):
            extra = imported_packages(path) - allowed - {package}
            if extra:
                offences.append(f"{path.relative_to(ROOT)} imports {sorted(extra)}")
    assert offences == []


def test_the_graphql_layer_imports_no_store_adapter() -> None:
    offences = []
    for path in (ROOT / "graphql_schema").rglob("*.py"):
        adapters = {m for m in imported_modules(path) if m.split(".")[0] == "db"} - DB_TYPES
        if adapters:
            offences.append(f"{path.relative_to(ROOT)} imports {sorted(adapters)}")
    assert offences == []
