"""The strategy registry: which strategies exist, where they came from, their parameters, and
checking a user's params.

A strategy is a `LongFlatStrategy` or `LongShortStrategy` subclass whose config class holds its
parameters: the fields it adds to `LongFlatConfig`, each declared as
`Annotated[int | float | bool, msgspec.Meta(ge=..., le=..., description=...)] = default` (with
`multiple_of=...` for the step a parameter search tries values at), so the
config class is the single source of the schema the API lists and of the checks below.

Strategies come from three places (`StrategySource.kind`), loaded by `load_registry`:

- `builtin`: every module of the `strategies` package that exposes `STRATEGY`, named for the
  module (`ema_cross`);
- `path`: the `.py` files of the directories given (`CANDLEGRAPH_STRATEGY_PATH`), each
  exposing `STRATEGY`, named for the file (`my_cross.py` is `my_cross`); files whose name
  starts with `_` are skipped;
- `package`: the entry points of the group `candlegraph.strategies`, named for the entry
  point, each pointing at a strategy class or at a module that exposes `STRATEGY`.

A user strategy that cannot be loaded (it does not import, its config is malformed or its
defaults are refused, its name is taken or not an identifier) is left out and reported as a
`PluginProblem` with its file or entry point and the error; it stops nothing else. The first
of two strategies with one name wins: built-ins, then the paths in order, then packages.

The functions below take the `registry` to look in; without one, they use the built-ins.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import inspect
import pkgutil
import typing
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from types import ModuleType

import msgspec
from nautilus_trader.model.data import BarType

import strategies
from strategies.errors import ParameterError, UnknownStrategyError
from strategies.long_flat import LongFlatConfig, LongFlatStrategy
from strategies.long_short import LongShortStrategy
from strategies.plugins import (
    PluginCandidate,
    PluginProblem,
    StrategySource,
    entry_point_candidates,
    path_candidates,
)

ParamValue = int | float | bool
AnyStrategy = LongFlatStrategy | LongShortStrategy
_BASES = (LongFlatStrategy, LongShortStrategy)

ParamType = typing.Literal["int", "float", "bool"]
Direction = typing.Literal["long_flat", "long_short"]
_TYPE_NAMES: dict[type, ParamType] = {int: "int", float: "float", bool: "bool"}
# A placeholder market, used only to run a config's cross-parameter checks before a backtest.
_CHECK_BAR_TYPE = BarType.from_str("CHECK-ONLY.SIM-1-MINUTE-LAST-EXTERNAL")


class ParameterSpec(msgspec.Struct, frozen=True, kw_only=True):
    """One strategy parameter as the API lists it."""

    name: str
    type: ParamType
    default: ParamValue
    minimum: int | float | None
    maximum: int | float | None
    description: str
    #: The spacing a search tries values at (`msgspec.Meta(multiple_of=...)`); None: any value.
    step: int | float | None = None


BUILTIN = StrategySource(kind="builtin")


class StrategyInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A strategy as the API lists it: its name, one-line summary, rule, parameters, whether it
    can go short (`long_short`, on a MARGIN account only) and where it came from."""

    name: str
    summary: str
    rule: str
    parameters: tuple[ParameterSpec, ...]
    direction: Direction = "long_flat"
    source: StrategySource = BUILTIN


class _Entry(msgspec.Struct, frozen=True):
    info: StrategyInfo
    strategy: type[AnyStrategy]
    config: type[LongFlatConfig]


class StrategyRegistry:
    """The strategies one process knows, by name, and the user strategies it left out."""

    def __init__(self, entries: Mapping[str, _Entry], problems: Sequence[PluginProblem] = ()):
        self._entries = dict(sorted(entries.items()))
        #: The user strategies that could not be loaded, in the order they were tried.
        self.problems = tuple(problems)

    def strategies(self) -> list[StrategyInfo]:
        """Every strategy, sorted by name."""
        return [entry.info for entry in self._entries.values()]

    def entry(self, name: str) -> _Entry:
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownStrategyError(name, list(self._entries)) from None


def load_registry(
    paths: Sequence[Path] = (),
    *,
    entry_points: Iterable[importlib.metadata.EntryPoint] | None = None,
) -> StrategyRegistry:
    """The built-in strategies, those of the `.py` files in the directories `paths`, and those
    of `entry_points` (by default the installed ones of the group `candlegraph.strategies`).
    Never raises for a user strategy: see `StrategyRegistry.problems`."""
    entries = dict(builtin_registry()._entries)
    problems: list[PluginProblem] = []
    candidates = [*path_candidates(paths), *entry_point_candidates(entry_points)]
    for candidate in candidates:
        try:
            entry = _load(candidate, entries)
        # A plugin's own code may raise anything, even SystemExit; it must not stop us.
        except (Exception, SystemExit) as error:
            problems.append(PluginProblem(where=candidate.where, error=_explain(error)))
            continue
        entries[candidate.name] = entry
    return StrategyRegistry(entries, problems)


@functools.cache
def builtin_registry() -> StrategyRegistry:
    """The strategies of the `strategies` package alone."""
    found: dict[str, _Entry] = {}
    for module_info in pkgutil.iter_modules(strategies.__path__):
        module = importlib.import_module(f"strategies.{module_info.name}")
        strategy = getattr(module, "STRATEGY", None)
        if inspect.isclass(strategy) and issubclass(strategy, _BASES):
            found[module_info.name] = _describe(module_info.name, module, strategy, BUILTIN)
    return StrategyRegistry(found)


def list_strategies(registry: StrategyRegistry | None = None) -> list[StrategyInfo]:
    """Every strategy, sorted by name."""
    return (registry or builtin_registry()).strategies()


def strategy_info(name: str, registry: StrategyRegistry | None = None) -> StrategyInfo:
    """The strategy called `name`; raises `UnknownStrategyError` listing the valid names."""
    return (registry or builtin_registry()).entry(name).info


def validate_params(
    name: str, params: Mapping[str, object], registry: StrategyRegistry | None = None
) -> dict[str, ParamValue]:
    """Check a user's params for strategy `name` and return them complete, defaults filled in.

    Raises `UnknownStrategyError` for an unknown strategy and `ParameterError` naming the
    parameter, what was expected and what arrived, for an unknown parameter, a wrong type, a
    value out of bounds, or a combination the strategy forbids (e.g. fast >= slow).
    """
    return _validate((registry or builtin_registry()).entry(name), params)


def build_strategy(
    name: str,
    params: Mapping[str, object],
    *,
    bar_type: BarType,
    trade_size: Decimal | None = None,
    equity_fraction: float | None = None,
    registry: StrategyRegistry | None = None,
) -> AnyStrategy:
    """A ready-to-add strategy instance for `bar_type`, its params checked as `validate_params`."""
    entry = (registry or builtin_registry()).entry(name)
    checked: dict[str, typing.Any] = _validate(entry, params)
    config = entry.config(
        instrument_id=bar_type.instrument_id,
        bar_type=bar_type,
        trade_size=trade_size,
        equity_fraction=equity_fraction,
        **checked,
    )
    return entry.strategy(config)  # type: ignore[arg-type]  # config is the strategy's config_type


def _validate(entry: _Entry, params: Mapping[str, object]) -> dict[str, ParamValue]:
    name = entry.info.name
    specs = {spec.name: spec for spec in entry.info.parameters}
    for key, value in params.items():
        if key not in specs:
            expected = f"one of the parameters {', '.join(specs) or '(none)'}"
            raise ParameterError(name, key, expected, value)
    checked: dict[str, typing.Any] = {
        spec.name: _check_value(name, spec, params.get(spec.name, spec.default))
        for spec in entry.info.parameters
    }
    # The config's own __post_init__ holds the cross-parameter rules; run them now, not later
    # inside the engine.
    entry.config(
        instrument_id=_CHECK_BAR_TYPE.instrument_id,
        bar_type=_CHECK_BAR_TYPE,
        equity_fraction=1.0,
        **checked,
    )
    return checked


def _check_value(strategy: str, spec: ParameterSpec, value: object) -> ParamValue:
    # bool is an int subclass: True must not pass for a length, nor 1 for a flag.
    if spec.type == "bool":
        if not isinstance(value, bool):
            raise ParameterError(strategy, spec.name, "bool", value)
        return value
    if isinstance(value, bool):
        raise ParameterError(strategy, spec.name, spec.type, value)
    if spec.type == "int":
        if not isinstance(value, int):
            raise ParameterError(strategy, spec.name, "int", value)
        number: int | float = value
    else:
        if not isinstance(value, int | float):
            raise ParameterError(strategy, spec.name, "float", value)
        number = float(value)
        if number != number or number in (float("inf"), float("-inf")):
            raise ParameterError(strategy, spec.name, "finite float", value)
    low, high = spec.minimum, spec.maximum
    if (low is not None and number < low) or (high is not None and number > high):
        raise ParameterError(strategy, spec.name, f"{spec.type} in [{low}, {high}]", value)
    return number


def _load(candidate: PluginCandidate, known: Mapping[str, _Entry]) -> _Entry:
    """The entry of one user strategy; raises `PluginError` or whatever its code raises."""
    if not candidate.name.isidentifier():
        raise PluginError(f"its name {candidate.name!r} is not a Python identifier")
    if candidate.name in known:
        taken = known[candidate.name].info.source
        raise PluginError(f"the name {candidate.name!r} is taken by {_describe_source(taken)}")
    loaded = candidate.load()
    module = loaded if isinstance(loaded, ModuleType) else inspect.getmodule(loaded)
    strategy = getattr(loaded, "STRATEGY", None) if isinstance(loaded, ModuleType) else loaded
    if not (inspect.isclass(strategy) and issubclass(strategy, _BASES)):
        raise PluginError(
            "expected STRATEGY to be a subclass of strategies.long_flat.LongFlatStrategy or"
            f" strategies.long_short.LongShortStrategy, got {strategy!r}"
        )
    entry = _describe(candidate.name, module, strategy, candidate.source)
    try:
        _validate(entry, {})
    except Exception as error:
        raise PluginError(f"its default parameters are refused: {error}") from error
    return entry


class PluginError(Exception):
    """A user strategy that loaded but cannot be offered (a reason for a `PluginProblem`)."""


def _explain(error: BaseException) -> str:
    if isinstance(error, PluginError):
        return str(error)
    return f"{type(error).__name__}: {error}"


def _describe_source(source: StrategySource) -> str:
    if source.kind == "builtin":
        return "a built-in strategy"
    if source.kind == "path":
        return f"the strategy in {source.file}"
    return f"the entry point {source.entry_point} of {source.distribution}"


def _describe(
    name: str, module: ModuleType | None, strategy: type[AnyStrategy], source: StrategySource
) -> _Entry:
    config = strategy.config_type
    if not (inspect.isclass(config) and issubclass(config, LongFlatConfig)):
        raise PluginError(
            f"{strategy.__name__}.config_type must be a subclass of LongFlatConfig (or"
            f" LongShortConfig), got {config!r}"
        )
    base_fields = {field.name for field in msgspec.structs.fields(LongFlatConfig)}
    hints = typing.get_type_hints(config, include_extras=True)
    parameters = []
    for field in msgspec.structs.fields(config):
        if field.name in base_fields:
            continue
        parameters.append(_parameter(config, field, hints[field.name]))
    doc = inspect.getdoc(strategy) or ""
    module_doc = inspect.getdoc(module) if module is not None else None
    summary = (module_doc or doc).split("\n", 1)[0]
    direction: Direction = (
        "long_short" if issubclass(strategy, LongShortStrategy) else "long_flat"
    )
    info = StrategyInfo(
        name=name, summary=summary, rule=doc, parameters=tuple(parameters),
        direction=direction, source=source,
    )
    return _Entry(info, strategy, config)


def _parameter(config: type, field: msgspec.structs.FieldInfo, hint: object) -> ParameterSpec:
    where = f"{config.__name__}.{field.name}"
    if typing.get_origin(hint) is not typing.Annotated:
        raise PluginError(f"{where} must be Annotated[type, msgspec.Meta(...)], got {hint!r}")
    base, *extras = typing.get_args(hint)
    meta = next((extra for extra in extras if isinstance(extra, msgspec.Meta)), None)
    if base not in _TYPE_NAMES or meta is None or not meta.description:
        raise PluginError(f"{where} needs an int, float or bool type and a Meta description")
    if field.default is msgspec.NODEFAULT:
        raise PluginError(f"{where} needs a default")
    return ParameterSpec(
        name=field.name,
        type=_TYPE_NAMES[base],
        default=field.default,
        minimum=meta.ge,
        maximum=meta.le,
        description=meta.description,
        step=meta.multiple_of,
    )
