"""Any pandas-ta indicator, on demand: validated calls over candle columns.

    call = prepare("macd", {"fast": 8})          # raises UnknownIndicator or BadParameter
    series = compute(call, ts_ns, columns)       # [("MACD_8_26_9", array), ("MACDh_8_26_9", ...)]

Names are pandas-ta's indicator functions (`pandas_ta.Category`, all categories) whose required
inputs are candle columns; two that need other series (`long_run`, `short_run`) are left out.
Parameters are read from each function's signature: the inputs (`open_`, `high`, `low`, `close`,
`volume`) come from the candles and are not parameters; every other named parameter may be
given, with the JSON type its annotation asks for (an integer, a number, a boolean, a string, or
a list). pandas-ta fills in its own defaults for parameters left out.

Outputs keep pandas-ta's names (`SMA_20`, `MACDh_12_26_9`, `BBU_20_2.0_2.0`): one series for a
Series result, one per column for a DataFrame, and for a tuple of frames (`ichimoku`) the first
one, whose rows line up with the candles (the second holds projections past the last candle).

Warm-up: a caller fetches `call.warmup` candles before the first one it wants, so that
recursive indicators (EMA, RSI, MACD) have settled: three times the largest integer parameter
given, at least `MIN_WARMUP` (pandas-ta's default lengths are at most 52) and at most
`MAX_WARMUP` candles.

pandas-ta takes about a second to import and compiles (or loads from its numba cache) some
kernels on first use, so it is imported on the first call, and `warm_up()` lets a server pay
that once at start-up, off its event loop. Everything here is pure computation, safe to run in
worker threads.
"""

from __future__ import annotations

import inspect
import math
import types
import typing
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

import numpy as np

from market.arrays import Floats

#: Candle columns pandas-ta functions take as inputs, by parameter name.
INPUTS = {"open_": "open", "high": "high", "low": "low", "close": "close", "volume": "volume"}
MIN_WARMUP = 300
MAX_WARMUP = 5000
#: Bounds that keep one request's work small; lengths beyond the data give null outputs anyway.
MAX_INT_PARAM = 100_000
MAX_TEXT_PARAM = 64
MAX_LIST_PARAM = 32

ParamKind = Literal["int", "number", "bool", "str", "numbers", "names"]
_KIND_TEXT = {
    "int": "an integer",
    "number": "a number",
    "bool": "true or false",
    "str": "a string",
    "numbers": "a list of numbers",
    "names": "a string or a list of strings",
}


class TaError(ValueError):
    """An indicator call that cannot be made."""


class UnknownIndicator(TaError):
    def __init__(self, name: str, valid: Sequence[str]) -> None:
        super().__init__(f"unknown pandas-ta indicator {name!r}; valid names: {', '.join(valid)}")
        self.name = name
        self.valid = tuple(valid)


class BadParameter(TaError):
    """A parameter that is unknown, of the wrong type or out of bounds; `param` names it."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param


@dataclass(frozen=True, slots=True)
class TaCall:
    """A validated call: indicator name, its parameters, the candle columns it reads."""

    name: str
    params: tuple[tuple[str, Any], ...]
    inputs: tuple[str, ...]
    warmup: int


def indicator_names() -> tuple[str, ...]:
    """Every indicator `prepare` accepts, sorted."""
    return tuple(sorted(_signatures()))


def parameters(name: str) -> dict[str, ParamKind]:
    """The parameters of one indicator and the kind of value each takes."""
    return dict(_signature(name)[1])


def prepare(name: str, params: object) -> TaCall:
    """Check the name and parameters of a call; raise `UnknownIndicator` or `BadParameter`."""
    inputs, kinds = _signature(name)
    if params is None:
        params = {}
    if not isinstance(params, Mapping):
        raise BadParameter("", f"expected an object of parameters, got {_json_type(params)}")
    checked = []
    for param, value in params.items():
        kind = kinds.get(param)
        if kind is None:
            valid = ", ".join(kinds) or "none"
            raise BadParameter(param, f"{name} has no parameter {param!r}; its parameters: {valid}")
        checked.append((param, _checked(param, kind, value)))
    periods = [abs(v) for _, v in checked if type(v) is int]
    warmup = min(MAX_WARMUP, max([MIN_WARMUP, *(3 * p for p in periods)]))
    return TaCall(name=name, params=tuple(checked), inputs=inputs, warmup=warmup)


def compute(
    call: TaCall, ts_ns: Sequence[int], columns: Mapping[str, Sequence[float]]
) -> list[tuple[str, Floats]]:
    """Run the call over candle columns (oldest first); one float array per output, NaN where
    pandas-ta gives no value. No outputs when pandas-ta has too few candles to compute any.

    `columns` holds `open`, `high`, `low`, `close` and `volume`; `ts_ns` the bucket starts, which
    become the frame's UTC DatetimeIndex (anchored indicators such as `vwap` need it).
    """
    import pandas as pd

    function = _function(call.name)
    index = pd.DatetimeIndex(np.asarray(ts_ns, dtype="datetime64[ns]"), tz="UTC")
    series = {
        param: pd.Series(np.asarray(columns[column], dtype=np.float64), index=index, name=column)
        for param, column in INPUTS.items()
        if param in call.inputs
    }
    try:
        result = function(**series, **dict(call.params))
    except Exception as error:
        given = ", ".join(f"{k}={v!r}" for k, v in call.params) or "its defaults"
        raise BadParameter("", f"pandas-ta could not compute {call.name} with {given}: "
                           f"{type(error).__name__}: {error}") from error
    if isinstance(result, tuple):
        result = result[0] if result else None
    if result is None:
        return []
    if isinstance(result, pd.Series):
        frame = result.to_frame(name=str(result.name or call.name))
    elif isinstance(result, pd.DataFrame):
        frame = result
    else:
        raise TaError(f"pandas-ta's {call.name} returned a {type(result).__name__}")
    if not frame.index.equals(index):
        frame = frame.reindex(index)
    return [
        (str(column), pd.to_numeric(frame[column], errors="coerce").to_numpy(
            dtype=np.float64, na_value=np.nan
        ))
        for column in frame.columns
    ]


def warm_up() -> None:
    """Import pandas-ta and run one indicator, so the first request does not pay for it."""
    call = prepare("sma", {"length": 3})
    ts = [i * 60_000_000_000 for i in range(10)]
    values = [float(i) for i in range(1, 11)]
    compute(call, ts, dict.fromkeys(INPUTS.values(), values))


# Introspection ------------------------------------------------------------------------------

@cache
def _pandas_ta() -> types.ModuleType:
    # pandas-ta 0.4 calls pandas APIs that pandas 3 deprecates; nothing a caller can act on.
    for category in (DeprecationWarning, FutureWarning):
        warnings.filterwarnings("ignore", category=category, module=r"pandas_ta\b")
    import pandas_ta

    return pandas_ta


def _function(name: str) -> Callable[..., Any]:
    function: Callable[..., Any] = getattr(_pandas_ta(), name)
    return function


@cache
def _signatures() -> dict[str, tuple[tuple[str, ...], dict[str, ParamKind]]]:
    ta = _pandas_ta()
    found = {}
    for name in sorted({n for names in ta.Category.values() for n in names}):
        function = getattr(ta, name, None)
        if not callable(function):
            continue
        described = _describe(inspect.signature(function))
        if described is not None:
            found[name] = described
    return found


def _signature(name: str) -> tuple[tuple[str, ...], dict[str, ParamKind]]:
    signatures = _signatures()
    if name not in signatures:
        raise UnknownIndicator(name, sorted(signatures))
    return signatures[name]


def _describe(
    signature: inspect.Signature,
) -> tuple[tuple[str, ...], dict[str, ParamKind]] | None:
    """Inputs and parameter kinds, or None when the function needs something candles lack."""
    inputs: list[str] = []
    kinds: dict[str, ParamKind] = {}
    for param in signature.parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if param.name in INPUTS:
            inputs.append(param.name)
            continue
        kind = _kind(param)
        if kind is None:
            if param.default is param.empty:
                return None
            continue
        kinds[param.name] = kind
    return tuple(inputs), kinds


def _kind(param: inspect.Parameter) -> ParamKind | None:
    annotation = param.annotation
    if annotation is param.empty:
        # Unannotated: judge by the default (`psar(tv=False)`, `vhm(std_length=None)`).
        return "bool" if isinstance(param.default, bool) else "number"
    arguments = set(typing.get_args(annotation)) or {annotation}
    if arguments <= {int, np.integer}:
        return "int"
    if arguments <= {int, np.integer, float, np.floating}:
        return "number"
    if annotation is bool:
        return "bool"
    if annotation is str:
        return "str"
    if str in arguments and any(typing.get_origin(a) is list for a in arguments):
        return "names"
    if annotation is typing.List or typing.get_origin(annotation) is list:  # noqa: UP006
        return "numbers"
    return None


def _checked(param: str, kind: ParamKind, value: Any) -> Any:
    ok = False
    if kind == "int":
        ok = type(value) is int and abs(value) <= MAX_INT_PARAM
    elif kind == "number":
        ok = _is_number(value)
    elif kind == "bool":
        ok = type(value) is bool
    elif kind == "str":
        ok = type(value) is str and len(value) <= MAX_TEXT_PARAM
    elif kind == "numbers":
        ok = type(value) is list and len(value) <= MAX_LIST_PARAM and all(map(_is_number, value))
    elif kind == "names":
        ok = (type(value) is str and len(value) <= MAX_TEXT_PARAM) or (
            type(value) is list and len(value) <= MAX_LIST_PARAM
            and all(type(v) is str and len(v) <= MAX_TEXT_PARAM for v in value)
        )
    if not ok:
        bounds = f" within ±{MAX_INT_PARAM}" if kind == "int" else ""
        raise BadParameter(
            param, f"expected {_KIND_TEXT[kind]}{bounds}, got {_json_type(value)} {value!r:.80}"
        )
    return value


def _is_number(value: Any) -> bool:
    return type(value) in (int, float) and math.isfinite(value) and abs(value) <= 1e12


def _json_type(value: Any) -> str:
    return {
        bool: "a boolean", int: "an integer", float: "a number", str: "a string",
        list: "a list", dict: "an object", type(None): "null",
    }.get(type(value), type(value).__name__)
