"""Where user strategies are found, and how their code is imported (`strategies.registry`
decides what to make of it).

- A directory of the strategy path holds one strategy per `.py` file, named for the file;
  files whose name starts with `_` are skipped, so a directory can hold private helpers.
  Each file is imported as the module `candlegraph_strategy_path.<name>` (not a package: a
  file imports what is installed, not its neighbours).
- An entry point of the group `candlegraph.strategies` names a strategy class
  (`my_cross = my_package.cross:MyCross`) or a module exposing `STRATEGY`.

Nothing is imported until a candidate's `load` is called.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import msgspec

#: The entry-point group packaged strategies register under.
ENTRY_POINT_GROUP = "candlegraph.strategies"
#: The package name files of the strategy path are imported under.
PATH_MODULE_PREFIX = "candlegraph_strategy_path"


class StrategySource(msgspec.Struct, frozen=True, kw_only=True):
    """Where a strategy came from: built in, a file of the strategy path (`file`), or an
    installed package (`distribution` and its `entry_point`, as `name = module:attr`)."""

    kind: Literal["builtin", "path", "package"]
    file: str | None = None
    distribution: str | None = None
    entry_point: str | None = None


class PluginProblem(msgspec.Struct, frozen=True, kw_only=True):
    """A user strategy left out: where it is (its file, or its entry point and package) and
    why."""

    where: str
    error: str


@dataclass(frozen=True, slots=True)
class PluginCandidate:
    """A user strategy found but not yet imported."""

    name: str
    where: str
    source: StrategySource
    load: Callable[[], object]


def path_candidates(paths: Sequence[Path]) -> list[PluginCandidate]:
    """One candidate per `.py` file of each directory, in path order, then by file name."""
    found = []
    for directory in paths:
        for file in sorted(directory.glob("*.py")):
            if file.name.startswith("_"):
                continue
            found.append(PluginCandidate(
                name=file.stem,
                where=str(file),
                source=StrategySource(kind="path", file=str(file)),
                load=_file_loader(file),
            ))
    return found


def entry_point_candidates(
    entry_points: Iterable[importlib.metadata.EntryPoint] | None = None,
) -> list[PluginCandidate]:
    """One candidate per entry point (by default, the installed ones of our group)."""
    if entry_points is None:
        entry_points = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    found = []
    for entry_point in entry_points:
        dist = entry_point.dist
        distribution = f"{dist.name} {dist.version}" if dist is not None else "(unknown package)"
        declared = f"{entry_point.name} = {entry_point.value}"
        found.append(PluginCandidate(
            name=entry_point.name,
            where=f"entry point {declared!r} of {distribution}",
            source=StrategySource(
                kind="package", distribution=distribution, entry_point=declared
            ),
            load=entry_point.load,
        ))
    return found


def _file_loader(file: Path) -> Callable[[], object]:
    def load() -> object:
        name = f"{PATH_MODULE_PREFIX}.{file.stem}"
        spec = importlib.util.spec_from_file_location(name, file)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot import {file} as a module")
        module = importlib.util.module_from_spec(spec)
        # Registered before it runs: resolving the config's annotations looks the module up.
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(name, None)
            raise
        return module

    return load
