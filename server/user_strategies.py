"""Loading the strategies a process offers, from its settings, and saying what was left out.

The server and `candlegraph worker` load them once at start-up and log one error line per
user strategy that could not be loaded (its file or entry point, and why); the worker's
backtest processes load the same ones again, quietly, from the same settings.
"""

from __future__ import annotations

import logging

from server.settings import Settings
from strategies.registry import StrategyRegistry, load_registry

log = logging.getLogger(__name__)


def load_strategies(settings: Settings, *, report: bool = True) -> StrategyRegistry:
    """The built-in strategies, those of `settings.strategy_path` and the installed packaged
    ones; with `report`, each one left out is logged as an error, and what was loaded as info."""
    registry = load_registry(settings.strategy_path)
    if report:
        for problem in registry.problems:
            log.error("strategy left out: %s: %s", problem.where, problem.error)
        users = [info for info in registry.strategies() if info.source.kind != "builtin"]
        if users or registry.problems:
            log.info(
                "user strategies loaded: %s; left out: %d",
                ", ".join(f"{info.name} ({info.source.file or info.source.entry_point})"
                          for info in users) or "none",
                len(registry.problems),
            )
    return registry
