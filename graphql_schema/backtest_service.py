"""What the backtest resolvers need from the server: the `BacktestService` Protocol and the
plain data that crosses it.

The server's implementation (`server.backtests.BacktestService`) runs jobs in worker processes
and keeps their records in the store; this module knows neither. Records, strategies and result
frames are described structurally, so the store's own objects pass through unchanged:

- a record (`BacktestRecordView`) carries `spec_json` and `metrics_json` as JSON text. A
  backtest's `metrics_json` is the runner's metrics object; a sweep's is a `SweepRanking`.
  A sweep's `spec_json` is its base spec plus `grid` and `rank_by`.
- trades and equity curves are polars frames with the store's columns (`trades`: position_id,
  side, entry_ts, exit_ts, entry_price, exit_price, quantity, pnl, fees, net_return; `equity`:
  ts, equity, position), timestamps in integer nanoseconds.

Errors the service raises for input it refuses (`InvalidInput`, naming the field of the request)
and for an id it does not know (`UnknownBacktest`) are defined here, so the resolvers can turn
them into GraphQL errors without knowing the service.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import Literal, Protocol

import msgspec
import polars as pl

ParamValue = int | float | bool
TERMINAL = frozenset({"SUCCEEDED", "FAILED", "CANCELLED"})


class InvalidInput(ValueError):
    """A request the service refuses. `field` is where, in the request's own snake_case terms:
    `strategy`, `params.fast`, `sizing.quantity`, `end`, `range`, `grid.fast`, `rank_by`..."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class UnknownBacktest(LookupError):
    """No backtest or sweep has this id."""

    def __init__(self, id: str) -> None:
        super().__init__(f"no backtest or sweep with id {id!r}")
        self.id = id


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


class BacktestFilter(msgspec.Struct, frozen=True, kw_only=True):
    """Which records to list. Without `sweep_id`, a sweep's own runs are left out unless
    `include_sweep_runs`; with it, only that sweep's runs are listed."""

    status: str | None = None
    kind: Literal["backtest", "sweep"] | None = None
    strategy: str | None = None
    exchange: str | None = None
    symbol: str | None = None
    sweep_id: str | None = None
    include_sweep_runs: bool = False


class RankedRun(msgspec.Struct, frozen=True, kw_only=True):
    """One finished run of a sweep: its record id, its params, its metrics (runner JSON)."""

    id: str
    params: dict[str, ParamValue]
    metrics: dict[str, float | int | None]


class FailedRun(msgspec.Struct, frozen=True, kw_only=True):
    """A run of a sweep that failed or was cancelled, and why."""

    id: str
    params: dict[str, ParamValue]
    status: str
    error: str | None


class SkippedRun(msgspec.Struct, frozen=True, kw_only=True):
    """A combination of the grid the strategy refuses (e.g. fast >= slow); never run."""

    params: dict[str, ParamValue]
    reason: str


class SweepRanking(msgspec.Struct, frozen=True, kw_only=True):
    """A sweep's result, stored as its `metrics_json`: runs best first by `rank_by`, runs
    where that metric is undefined last, ties in grid order."""

    rank_by: str
    runs: list[RankedRun]
    failed: list[FailedRun] = msgspec.field(default_factory=list)
    skipped: list[SkippedRun] = msgspec.field(default_factory=list)


class BacktestRecordView(Protocol):
    """A backtest or sweep record (structurally the store's `BacktestRecord`)."""

    @property
    def id(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def strategy(self) -> str: ...
    @property
    def exchange(self) -> str: ...
    @property
    def symbol(self) -> str: ...
    @property
    def timeframe(self) -> str: ...
    @property
    def start_ns(self) -> int: ...
    @property
    def end_ns(self) -> int: ...
    @property
    def created_ns(self) -> int: ...
    @property
    def started_ns(self) -> int | None: ...
    @property
    def finished_ns(self) -> int | None: ...
    @property
    def progress(self) -> float: ...
    @property
    def error(self) -> str | None: ...
    @property
    def spec_json(self) -> str: ...
    @property
    def metrics_json(self) -> str | None: ...
    @property
    def sweep_id(self) -> str | None: ...


class ParameterView(Protocol):
    """One strategy parameter (structurally the registry's `ParameterSpec`)."""

    @property
    def name(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def default(self) -> ParamValue: ...
    @property
    def minimum(self) -> int | float | None: ...
    @property
    def maximum(self) -> int | float | None: ...
    @property
    def description(self) -> str: ...


class StrategyView(Protocol):
    """A strategy (structurally the registry's `StrategyInfo`)."""

    @property
    def name(self) -> str: ...
    @property
    def summary(self) -> str: ...
    @property
    def rule(self) -> str: ...
    @property
    def parameters(self) -> Sequence[ParameterView]: ...


class BacktestService(Protocol):
    def strategies(self) -> Sequence[StrategyView]:
        """Every strategy, sorted by name."""
        ...

    async def submit(self, request: BacktestRequest) -> BacktestRecordView:
        """Queue a backtest and return its record (status QUEUED) at once.

        Raises `InvalidInput` for an unknown strategy, a bad parameter or spec field, an empty
        range or a range with no stored candles."""
        ...

    async def submit_sweep(
        self, request: BacktestRequest, grid: Mapping[str, object], rank_by: str
    ) -> BacktestRecordView:
        """Queue one run per combination of `grid` (each overriding `request.params`), to be
        ranked by `rank_by`; return the sweep's record at once. Raises `InvalidInput` as
        `submit` does, and for an empty or oversized grid or an unknown `rank_by`."""
        ...

    async def cancel(self, id: str) -> BacktestRecordView:
        """Cancel a queued or running backtest or sweep; a finished one is returned unchanged.
        Raises `UnknownBacktest`."""
        ...

    async def get(self, id: str) -> BacktestRecordView | None: ...

    async def list(
        self, filter: BacktestFilter, *, limit: int, created_before_ns: int | None = None
    ) -> list[BacktestRecordView]:
        """Records matching `filter`, newest first; `created_ns` is unique, so it pages."""
        ...

    async def trades(self, id: str, *, offset: int, limit: int) -> pl.DataFrame:
        """A page of one run's trades, ordered by exit then position id."""
        ...

    async def equity(self, id: str) -> pl.DataFrame:
        """One run's equity curve, oldest first (empty when none is stored)."""
        ...

    def progress(self, id: str) -> AsyncGenerator[BacktestRecordView, None]:
        """The record now, then after every change of status or progress, ending with the
        terminal one. Raises `UnknownBacktest` before yielding anything."""
        ...
