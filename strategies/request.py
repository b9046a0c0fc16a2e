"""A request to queue a backtest, and every check it must pass first.

The API turns a client's input into a `BacktestRequest` and nothing more; the checks live here:
`check_request` gives the spec to run (params complete, defaults filled in) and `base_spec`
the spec a sweep's grid overrides (its params checked per combination by
`strategies.sweep.plan_sweep`). `check_stored` asks the store that candles exist in the range.
Every refusal is an `InvalidRequest` naming the field in the request's own terms (`strategy`,
`params.fast`, `maker_fee`, `sizing.fraction`, `end`, `range`...).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import UTC, datetime
from typing import Literal

import msgspec

from db.candle_store import CandleStore
from strategies.errors import InvalidRequest, ParameterError, SpecError, UnknownStrategyError
from strategies.registry import StrategyRegistry, strategy_info, validate_params
from strategies.spec import BacktestSpec, EquityFraction, FixedQuantity

_SPEC_FIELDS = (
    "starting_balance", "currency", "maker_fee", "taker_fee", "account_type", "leverage",
)


class BacktestRequest(msgspec.Struct, frozen=True, kw_only=True):
    """One backtest over the stored candles with start_ns <= ts < end_ns.

    A field left None takes the backtest spec's default. Sizing is `quantity` (a fixed base
    quantity per entry) or `fraction` (of equity), not both.
    """

    exchange: str
    symbol: str
    timeframe: str
    strategy: str
    start_ns: int
    end_ns: int
    params: Mapping[str, object] = msgspec.field(default_factory=dict)
    starting_balance: float | None = None
    currency: str | None = None
    maker_fee: float | None = None
    taker_fee: float | None = None
    account_type: Literal["CASH", "MARGIN"] | None = None
    leverage: float | None = None
    quantity: float | None = None
    fraction: float | None = None


def check_request(
    request: BacktestRequest,
    *,
    timeframes: Collection[str],
    registry: StrategyRegistry | None = None,
) -> BacktestSpec:
    """The spec `request` asks for, every field and param checked, defaults filled in.

    `timeframes` are the ones the store holds; the strategy is looked up in `registry` (the
    built-ins by default). Raises `InvalidRequest`.
    """
    spec = base_spec(request, timeframes=timeframes, registry=registry)
    try:
        params = validate_params(spec.strategy, spec.params, registry)
    except ParameterError as error:
        raise bad_param(error, f"params.{error.parameter}") from error
    spec = msgspec.structs.replace(spec, params=params)
    check_range(request)
    return spec


def base_spec(
    request: BacktestRequest,
    *,
    timeframes: Collection[str],
    registry: StrategyRegistry | None = None,
) -> BacktestSpec:
    """The spec `request` describes, its fields checked but its params as given (a sweep's
    grid completes them). A long/short strategy's account is MARGIN unless the request says
    otherwise, and CASH is refused for it. Raises `InvalidRequest`."""
    if request.timeframe not in timeframes:
        raise InvalidRequest(
            "timeframe", f"expected one of {', '.join(timeframes)}, got {request.timeframe!r}"
        )
    try:
        info = strategy_info(request.strategy, registry)
    except UnknownStrategyError as error:
        raise InvalidRequest("strategy", str(error)) from error
    if not isinstance(request.params, Mapping):
        got = request.params
        raise InvalidRequest("params", f"expected an object of parameter values, got {got!r}")
    fields = {name: getattr(request, name) for name in _SPEC_FIELDS}
    fields = {name: value for name, value in fields.items() if value is not None}
    if info.direction == "long_short":
        if request.account_type == "CASH":
            expected = f"MARGIN (strategy {request.strategy!r} sells short)"
            raise InvalidRequest("account_type", f"expected {expected}, got 'CASH'")
        fields["account_type"] = "MARGIN"
    if request.quantity is not None and request.fraction is not None:
        raise InvalidRequest("sizing", "expected quantity or fraction, not both")
    if request.quantity is not None:
        fields["sizing"] = FixedQuantity(request.quantity)
    elif request.fraction is not None:
        fields["sizing"] = EquityFraction(request.fraction)
    try:
        return BacktestSpec(
            exchange=request.exchange,
            symbol=request.symbol,
            timeframe=request.timeframe,
            strategy=request.strategy,
            params=dict(request.params),  # type: ignore[arg-type]  # checked by validate_params
            **fields,
        )
    except SpecError as error:
        raise bad_spec(error) from error


def check_range(request: BacktestRequest) -> None:
    """Refuse an empty or reversed range."""
    if request.end_ns <= request.start_ns:
        raise InvalidRequest("end", "expected a time after start")


def check_stored(store: CandleStore, spec: BacktestSpec, request: BacktestRequest) -> None:
    """Refuse a range in which the store holds no candle of the spec's market and timeframe."""
    found = store.candles(
        spec.exchange, spec.symbol, spec.timeframe,
        start_ns=request.start_ns, end_ns=request.end_ns, limit=1,
    )
    if not found:
        raise InvalidRequest(
            "range",
            f"no {spec.timeframe} candles of {spec.exchange} {spec.symbol} are stored from"
            f" {_iso(request.start_ns)} to {_iso(request.end_ns)}",
        )


def bad_param(error: ParameterError, field: str) -> InvalidRequest:
    """A parameter error as a refusal of `field` (`params.fast`, `grid.fast`)."""
    return InvalidRequest(field, f"expected {error.expected}, got {error.got!r}")


def bad_spec(error: SpecError) -> InvalidRequest:
    """A spec error as a refusal of the field it names."""
    return InvalidRequest(error.field, f"expected {error.expected}, got {error.got!r}")


def _iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).isoformat()
