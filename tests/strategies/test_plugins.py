"""User strategies from strategy-path directories and from installed packages' entry points,
and every way one can be broken: each is left out with its file and error, and nothing else is.
"""

from __future__ import annotations

import importlib.metadata
import shutil
import textwrap
from pathlib import Path

import pytest

from strategies.plugins import ENTRY_POINT_GROUP, PluginProblem, StrategySource
from strategies.registry import builtin_registry, load_registry, strategy_info, validate_params

EXAMPLE = Path(__file__).parents[2] / "examples" / "strategies" / "sma_band.py"

GOOD = '''
"""Cross of the close over an EMA."""
from typing import Annotated

from msgspec import Meta
from nautilus_trader.indicators import ExponentialMovingAverage

from strategies.long_short import LongShortConfig, LongShortStrategy


class CloseCrossConfig(LongShortConfig, frozen=True, kw_only=True):
    length: Annotated[int, Meta(ge=2, le=50, description="EMA length.")] = 5


class CloseCross(LongShortStrategy):
    """Rule: long above the EMA, short below it."""

    config_type = CloseCrossConfig

    def __init__(self, config):
        super().__init__(config)
        self._ema = ExponentialMovingAverage(config.length)

    def register_indicators(self):
        self.register_indicator_for_bars(self.config.bar_type, self._ema)

    def on_bar(self, bar):
        if self._ema.initialized:
            self.follow_cross(bar, bar.close.as_double() > self._ema.value)


STRATEGY = CloseCross
'''

BROKEN = {
    "syntax_slip.py": ("def broken(:\n", "SyntaxError: "),
    "missing_import.py": (
        "import candlegraph_no_such_module\n",
        "ModuleNotFoundError: No module named 'candlegraph_no_such_module'",
    ),
    "raises_on_import.py": ("raise RuntimeError('needs an API key')\n",
                            "RuntimeError: needs an API key"),
    "no_strategy.py": ("X = 1\n", "expected STRATEGY to be a subclass of"),
    "exits.py": ("import sys\nsys.exit(3)\n", "SystemExit: 3"),
    "unannotated.py": (
        GOOD.replace('Annotated[int, Meta(ge=2, le=50, description="EMA length.")]', "int"),
        "CloseCrossConfig.length must be Annotated[type, msgspec.Meta(...)]",
    ),
    "bad_default.py": (
        GOOD.replace("= 5", "= 500"),
        "its default parameters are refused: strategy 'bad_default' parameter 'length': "
        "expected int in [2, 50], got 500",
    ),
    "ema_cross.py": (GOOD, "the name 'ema_cross' is taken by a built-in strategy"),
    "has-dash.py": (GOOD, "its name 'has-dash' is not a Python identifier"),
}


def write(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(textwrap.dedent(text))
    return path


def test_a_path_strategy_is_listed_with_its_file_and_schema(tmp_path: Path) -> None:
    file = write(tmp_path, "close_cross.py", GOOD)
    write(tmp_path, "_helpers.py", "raise RuntimeError('private files are not loaded')\n")

    registry = load_registry([tmp_path], entry_points=())

    info = strategy_info("close_cross", registry)
    assert registry.problems == ()
    assert info.source == StrategySource(kind="path", file=str(file))
    assert (info.summary, info.direction) == ("Cross of the close over an EMA.", "long_short")
    assert validate_params("close_cross", {}, registry) == {"length": 5}
    assert [i.name for i in registry.strategies()] == sorted(
        [*(i.name for i in builtin_registry().strategies()), "close_cross"]
    )


def test_each_broken_file_is_left_out_with_its_file_and_error(tmp_path: Path) -> None:
    for name, (text, _) in BROKEN.items():
        write(tmp_path, name, text)
    write(tmp_path, "close_cross.py", GOOD)

    registry = load_registry([tmp_path], entry_points=())

    problems = {Path(p.where).name: p.error for p in registry.problems}
    assert sorted(problems) == sorted(BROKEN)
    for name, (_, error) in BROKEN.items():
        assert error in problems[name], name
    assert "(syntax_slip.py, line 1)" in problems["syntax_slip.py"]
    listed = {info.name: info for info in registry.strategies()}
    assert "close_cross" in listed and "syntax_slip" not in listed
    assert listed["ema_cross"].source.kind == "builtin"


def test_of_two_strategies_with_one_name_the_first_directory_wins(tmp_path: Path) -> None:
    first = write(tmp_path / "first", "sma_band.py", EXAMPLE.read_text())
    second = write(tmp_path / "second", "sma_band.py", GOOD)

    registry = load_registry([tmp_path / "first", tmp_path / "second"], entry_points=())

    assert strategy_info("sma_band", registry).source.file == str(first)
    assert registry.problems == (PluginProblem(
        where=str(second), error=f"the name 'sma_band' is taken by the strategy in {first}"
    ),)


def test_packaged_strategies_load_from_their_entry_points(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "cg_example_strategies"
    write(package, "__init__.py", "")
    shutil.copy(EXAMPLE, package / "band.py")
    write(package, "cross.py", GOOD)
    write(tmp_path / "cg_example_strategies-1.2.dist-info", "METADATA",
          "Metadata-Version: 2.1\nName: cg-example-strategies\nVersion: 1.2\n")
    write(tmp_path / "cg_example_strategies-1.2.dist-info", "entry_points.txt", f"""
        [{ENTRY_POINT_GROUP}]
        packaged_band = cg_example_strategies.band
        packaged_cross = cg_example_strategies.cross:CloseCross
        packaged_missing = cg_example_strategies.gone:Nothing
        sma_band = cg_example_strategies.band
    """)
    monkeypatch.syspath_prepend(str(tmp_path))

    registry = load_registry([EXAMPLE.parent])

    found = [ep.name for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)]
    assert sorted(found) == ["packaged_band", "packaged_cross", "packaged_missing", "sma_band"]
    cross = strategy_info("packaged_cross", registry)
    assert cross.source == StrategySource(
        kind="package", distribution="cg-example-strategies 1.2",
        entry_point="packaged_cross = cg_example_strategies.cross:CloseCross",
    )
    assert strategy_info("packaged_band", registry).parameters == strategy_info(
        "sma_band", registry).parameters
    problems = {p.where: p.error for p in registry.problems}
    assert problems == {
        "entry point 'packaged_missing = cg_example_strategies.gone:Nothing' of "
        "cg-example-strategies 1.2": "ModuleNotFoundError: No module named "
        "'cg_example_strategies.gone'",
        "entry point 'sma_band = cg_example_strategies.band' of cg-example-strategies 1.2":
        f"the name 'sma_band' is taken by the strategy in {EXAMPLE}",
    }
