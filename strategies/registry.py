"""The strategy registry: which strategies exist, their parameters, and checking a user's params.

A strategy module is any module of the `strategies` package that exposes `STRATEGY`, a
`LongFlatStrategy` subclass; the module name is the strategy's name (`ema_cross`). Its
parameters are the fields its config class adds to `LongFlatConfig`, each declared as
`Annotated[int | float | bool, msgspec.Meta(ge=..., le=..., description=...)] = default` (with
`multiple_of=...` for the step a parameter search tries values at), so the
config class is the single source of the schema the API lists and of the checks below.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import pkgutil
import typing
from collections.abc import Mapping
from decimal import Decimal
from types import ModuleType

import msgspec
from nautilus_trader.model.data import BarType

import strategies
from strategies.errors import ParameterError, UnknownStrategyError
from strategies.long_flat import LongFlatConfig, LongFlatStrategy

ParamValue = int | float | bool

ParamType = typing.Literal["int", "float", "bool"]
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


class StrategyInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A strategy as the API lists it: its name, one-line summary, rule and parameters."""

    name: str
    summary: str
    rule: str
    parameters: tuple[ParameterSpec, ...]


class _Entry(msgspec.Struct, frozen=True):
    info: StrategyInfo
    strategy: type[LongFlatStrategy]
    config: type[LongFlatConfig]


def list_strategies() -> list[StrategyInfo]:
    """Every discovered strategy, sorted by name."""
    return [entry.info for entry in _registry().values()]


def strategy_info(name: str) -> StrategyInfo:
    """The strategy called `name`; raises `UnknownStrategyError` listing the valid names."""
    return _entry(name).info


def validate_params(name: str, params: Mapping[str, object]) -> dict[str, ParamValue]:
    """Check a user's params for strategy `name` and return them complete, defaults filled in.

    Raises `UnknownStrategyError` for an unknown strategy and `ParameterError` naming the
    parameter, what was expected and what arrived, for an unknown parameter, a wrong type, a
    value out of bounds, or a combination the strategy forbids (e.g. fast >= slow).
    """
    entry = _entry(name)
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


def build_strategy(
    name: str,
    params: Mapping[str, object],
    *,
    bar_type: BarType,
    trade_size: Decimal | None = None,
    equity_fraction: float | None = None,
) -> LongFlatStrategy:
    """A ready-to-add strategy instance for `bar_type`, its params checked as `validate_params`."""
    entry = _entry(name)
    checked: dict[str, typing.Any] = validate_params(name, params)
    config = entry.config(
        instrument_id=bar_type.instrument_id,
        bar_type=bar_type,
        trade_size=trade_size,
        equity_fraction=equity_fraction,
        **checked,
    )
    return entry.strategy(config)


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


def _entry(name: str) -> _Entry:
    registry = _registry()
    try:
        return registry[name]
    except KeyError:
        raise UnknownStrategyError(name, list(registry)) from None


@functools.cache
def _registry() -> dict[str, _Entry]:
    found: dict[str, _Entry] = {}
    for module_info in sorted(pkgutil.iter_modules(strategies.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"strategies.{module_info.name}")
        strategy = getattr(module, "STRATEGY", None)
        if inspect.isclass(strategy) and issubclass(strategy, LongFlatStrategy):
            found[module_info.name] = _describe(module_info.name, module, strategy)
    return found


def _describe(name: str, module: ModuleType, strategy: type[LongFlatStrategy]) -> _Entry:
    config = strategy.config_type
    base_fields = {field.name for field in msgspec.structs.fields(LongFlatConfig)}
    hints = typing.get_type_hints(config, include_extras=True)
    parameters = []
    for field in msgspec.structs.fields(config):
        if field.name in base_fields:
            continue
        parameters.append(_parameter(config, field, hints[field.name]))
    doc = inspect.getdoc(strategy) or ""
    summary = (inspect.getdoc(module) or doc).split("\n", 1)[0]
    return _Entry(
        StrategyInfo(name=name, summary=summary, rule=doc, parameters=tuple(parameters)),
        strategy,
        config,
    )


def _parameter(config: type, field: msgspec.structs.FieldInfo, hint: object) -> ParameterSpec:
    where = f"{config.__name__}.{field.name}"
    if typing.get_origin(hint) is not typing.Annotated:
        raise TypeError(f"{where} must be Annotated[type, msgspec.Meta(...)], got {hint!r}")
    base, *extras = typing.get_args(hint)
    meta = next((extra for extra in extras if isinstance(extra, msgspec.Meta)), None)
    if base not in _TYPE_NAMES or meta is None or not meta.description:
        raise TypeError(f"{where} needs an int, float or bool type and a Meta description")
    if field.default is msgspec.NODEFAULT:
        raise TypeError(f"{where} needs a default")
    return ParameterSpec(
        name=field.name,
        type=_TYPE_NAMES[base],
        default=field.default,
        minimum=meta.ge,
        maximum=meta.le,
        description=meta.description,
        step=meta.multiple_of,
    )
