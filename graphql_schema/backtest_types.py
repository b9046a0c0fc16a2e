"""Strawberry types of backtests: strategies, records with metrics, trades and equity, sweeps.

Each type translates one of `strategies`' (or the store's record) and adds nothing: a
`Backtest` is built from a stored record, its ranking from the stored `SweepRanking`; its
trades and equity curve are fields with resolvers, read from the service only when a query
selects them. Python names end in `Type` or `Input` where `strategies` has a class of the same
name; the GraphQL names are the plain ones.
"""

from __future__ import annotations

import json
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any

import msgspec
import polars as pl
import strawberry
from strawberry.scalars import JSON

from db.backtest_store import BacktestRecord
from graphql_schema.columns import FloatColumn
from graphql_schema.context import Context
from graphql_schema.errors import BadArgument
from graphql_schema.types import NS_PER_MS, NS_PER_SECOND, to_datetime
from strategies.registry import StrategyInfo
from strategies.result import Metrics
from strategies.service import BacktestService
from strategies.sweep import SweepRanking

if TYPE_CHECKING:
    from graphql_schema.research_types import WalkForward

#: Most trades one `trades` field returns.
MAX_TRADES_PAGE = 1000


@strawberry.enum(description="Where a backtest or sweep is in its life.")
class BacktestStatus(Enum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


@strawberry.enum(
    description="A single backtest, a parameter sweep (which has runs), or a walk-forward "
    "(which has a sweep and an out-of-sample run per fold)."
)
class BacktestKind(Enum):
    BACKTEST = "backtest"
    SWEEP = "sweep"
    WALKFORWARD = "walkforward"


@strawberry.enum
class ParameterType(Enum):
    INT = "int"
    FLOAT = "float"
    BOOL = "bool"


@strawberry.enum(description="Long/flat strategies only open LONG positions.")
class PositionSide(Enum):
    LONG = "LONG"
    SHORT = "SHORT"


@strawberry.enum(description="CASH holds what it buys; MARGIN books PnL in the quote currency.")
class AccountType(Enum):
    CASH = "CASH"
    MARGIN = "MARGIN"


@strawberry.type(description="One parameter of a strategy, with its bounds.")
class StrategyParameter:
    name: str
    type: ParameterType
    default: JSON
    minimum: float | None
    maximum: float | None
    description: str
    step: float | None = strawberry.field(
        default=None, description="The spacing a search tries values at; null: any value."
    )


@strawberry.enum(description="Where a strategy came from.")
class StrategySourceKind(Enum):
    BUILTIN = "builtin"
    PATH = "path"
    PACKAGE = "package"


@strawberry.type(description="Where a strategy came from: built in, a file of the server's "
                 "strategy path, or an installed package's entry point.")
class StrategySource:
    kind: StrategySourceKind
    file: str | None = strawberry.field(description="PATH: the strategy's file.")
    distribution: str | None = strawberry.field(
        description="PACKAGE: the installed distribution and its version."
    )
    entry_point: str | None = strawberry.field(
        description="PACKAGE: the entry point, as `name = module:attr`."
    )


@strawberry.enum(description="LONG_FLAT strategies hold a long position or none; LONG_SHORT "
                 "ones may also sell short, on a MARGIN account only.")
class StrategyDirection(Enum):
    LONG_FLAT = "long_flat"
    LONG_SHORT = "long_short"


@strawberry.type(description="A strategy that backtests can run.")
class Strategy:
    name: str
    summary: str
    rule: str = strawberry.field(description="The strategy's trading rule, in words.")
    parameters: list[StrategyParameter]
    direction: StrategyDirection
    source: StrategySource

    @classmethod
    def of(cls, info: StrategyInfo) -> Strategy:
        source = info.source
        return cls(
            name=info.name,
            summary=info.summary,
            rule=info.rule,
            direction=StrategyDirection(info.direction),
            source=StrategySource(
                kind=StrategySourceKind(source.kind),
                file=source.file,
                distribution=source.distribution,
                entry_point=source.entry_point,
            ),
            parameters=[
                StrategyParameter(
                    name=p.name,
                    type=ParameterType(p.type),
                    default=JSON(p.default),
                    minimum=p.minimum,
                    maximum=p.maximum,
                    description=p.description,
                    step=p.step,
                )
                for p in info.parameters
            ],
        )


@strawberry.type(
    description="A run's performance. Returns and drawdowns are fractions (0.1 = 10 %), money "
    "in the quote currency; a statistic undefined for the run (no trades, no losing trade, "
    "zero volatility) is null."
)
class BacktestMetrics:
    bar_count: int
    periods_per_year: float
    starting_equity: float
    final_equity: float
    total_return: float
    cagr: float | None
    annual_volatility: float | None
    sharpe: float | None
    sortino: float | None
    calmar: float | None
    max_drawdown: float
    max_drawdown_duration_seconds: float
    exposure: float = strawberry.field(description="Fraction of bars spent holding a position.")
    buy_and_hold_return: float
    trade_count: int
    win_rate: float | None
    profit_factor: float | None
    expectancy: float | None = strawberry.field(description="Mean net PnL per trade.")
    average_win: float | None
    average_loss: float | None
    best_trade: float | None
    worst_trade: float | None
    total_fees: float

    @classmethod
    def of(cls, metrics: Metrics) -> BacktestMetrics:
        """From the runner's metrics; its drawdown duration is in nanoseconds."""
        values: dict[str, Any] = msgspec.structs.asdict(metrics)
        duration_ns = values.pop("max_drawdown_duration_ns")
        return cls(max_drawdown_duration_seconds=duration_ns / NS_PER_SECOND, **values)


@strawberry.type(description="A closed position. PnL is net of both legs' fees.")
class BacktestTrade:
    position_id: str
    side: PositionSide
    entry_time: datetime
    exit_time: datetime
    entry_price: float
    exit_price: float
    quantity: float
    pnl: float
    fees: float
    net_return: float = strawberry.field(description="PnL over the entry notional.")


@strawberry.type(
    description="Equity marked to market at every bar close, as columns: element i of each "
    "list is bar i. `ts` is the bar's close in epoch milliseconds (UTC); `position` the base "
    "quantity held after that close."
)
class EquityCurve:
    ts: list[float]
    equity: list[float]
    position: list[float]


@strawberry.type(
    name="RankedRun", description="A finished run of a sweep: its id, params and metrics."
)
class RankedRunType:
    rank: int = strawberry.field(description="1 for the best.")
    id: strawberry.ID
    params: JSON
    metrics: BacktestMetrics


@strawberry.type(description="A run of a sweep that failed or was cancelled.")
class UnfinishedRun:
    id: strawberry.ID
    params: JSON
    status: BacktestStatus
    error: str | None


@strawberry.type(
    name="SkippedRun",
    description="A combination the strategy refuses (e.g. fast >= slow); not run.",
)
class SkippedRunType:
    params: JSON
    reason: str


@strawberry.type(
    name="SweepRanking",
    description="A sweep's runs best first by `rankBy` (runs where it is undefined last).",
)
class SweepRankingType:
    rank_by: str
    runs: list[RankedRunType]
    unfinished: list[UnfinishedRun]
    skipped: list[SkippedRunType]

    @classmethod
    def of(cls, metrics_json: str) -> SweepRankingType:
        ranking = msgspec.json.decode(metrics_json, type=SweepRanking)
        return cls(
            rank_by=ranking.rank_by,
            runs=[
                RankedRunType(rank=rank, id=strawberry.ID(run.id), params=JSON(run.params),
                              metrics=BacktestMetrics.of(run.metrics))
                for rank, run in enumerate(ranking.runs, start=1)
            ],
            unfinished=[
                UnfinishedRun(id=strawberry.ID(run.id), params=JSON(run.params),
                              status=BacktestStatus(run.status), error=run.error)
                for run in ranking.failed
            ],
            skipped=[
                SkippedRunType(params=JSON(run.params), reason=run.reason)
                for run in ranking.skipped
            ],
        )


@strawberry.type(description="A backtest or a parameter sweep, as stored.")
class Backtest:
    id: strawberry.ID
    kind: BacktestKind
    status: BacktestStatus
    progress: float = strawberry.field(description="0 to 1.")
    error: str | None = strawberry.field(description="Why it failed, when it did.")
    strategy: str
    exchange: str
    symbol: str
    timeframe: str
    start: datetime = strawberry.field(description="Candles with start <= ts < end were run.")
    end: datetime
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    sweep_id: strawberry.ID | None = strawberry.field(description="The sweep this run is part of.")
    attempt: int = strawberry.field(
        description="Which delivery of the run's job ran it: 0 while queued, 1 on the first, "
        "more after a worker died and the job was retried."
    )
    worker: str | None = strawberry.field(
        description="The worker process (host:pid) that runs or ran it."
    )
    spec: JSON = strawberry.field(
        description="Everything that was asked for: market, strategy, params (defaults filled "
        "in), fees, account and sizing; a sweep's also has its grid and rank_by."
    )
    record: strawberry.Private[BacktestRecord]

    @classmethod
    def of(cls, record: BacktestRecord) -> Backtest:
        return cls(
            id=strawberry.ID(record.id),
            kind=BacktestKind(record.kind),
            status=BacktestStatus(record.status),
            progress=record.progress,
            error=record.error,
            strategy=record.strategy,
            exchange=record.exchange,
            symbol=record.symbol,
            timeframe=record.timeframe,
            start=to_datetime(record.start_ns),
            end=to_datetime(record.end_ns),
            created_at=to_datetime(record.created_ns),
            started_at=to_datetime(record.started_ns) if record.started_ns is not None else None,
            finished_at=(
                to_datetime(record.finished_ns) if record.finished_ns is not None else None
            ),
            sweep_id=strawberry.ID(record.sweep_id) if record.sweep_id is not None else None,
            attempt=record.attempt,
            worker=record.worker,
            spec=JSON(json.loads(record.spec_json)),
            record=record,
        )

    @strawberry.field(
        description="The strategy's params, defaults filled in (a sweep's: the base params its "
        "grid overrides, as given)."
    )
    def params(self) -> JSON:
        spec = self.spec
        assert isinstance(spec, dict)  # a stored spec is a JSON object
        return JSON(spec.get("params", {}))

    @strawberry.field(description="Null until a backtest succeeds; null for a sweep.")
    def metrics(self) -> BacktestMetrics | None:
        if self.record.kind != "backtest" or self.record.metrics_json is None:
            return None
        return BacktestMetrics.of(msgspec.json.decode(self.record.metrics_json, type=Metrics))

    @strawberry.field(
        description="A walk-forward's folds and stitched result once it has ended; null "
        "otherwise."
    )
    def walk_forward(self) -> Annotated[
        WalkForward, strawberry.lazy("graphql_schema.research_types")
    ] | None:
        from graphql_schema.research_types import WalkForward

        if self.record.kind != "walkforward" or self.record.metrics_json is None:
            return None
        return WalkForward.of(self.record.metrics_json)

    @strawberry.field(
        description="A sweep's ranked runs: a grid's once it has ended, a search's (RANDOM, "
        "TPE) as each batch of trials ends; null otherwise."
    )
    def ranking(self) -> SweepRankingType | None:
        if self.record.kind != "sweep" or self.record.metrics_json is None:
            return None
        return SweepRankingType.of(self.record.metrics_json)

    @strawberry.field(
        description="Closed positions, in order of exit (a walk-forward's: the out-of-sample "
        "runs' joined, scaled as its stitched curve)."
    )
    async def trades(
        self,
        info: strawberry.Info[Context, None],
        offset: int = 0,
        limit: Annotated[
            int, strawberry.argument(description=f"At most {MAX_TRADES_PAGE}.")
        ] = 100,
    ) -> list[BacktestTrade]:
        if offset < 0:
            raise BadArgument("offset", f"expected 0 or more, got {offset}")
        if not 1 <= limit <= MAX_TRADES_PAGE:
            raise BadArgument("limit", f"expected 1 to {MAX_TRADES_PAGE}, got {limit}")
        frame = await backtest_service(info).trades(self.record.id, offset=offset, limit=limit)
        return [
            BacktestTrade(
                position_id=row["position_id"],
                side=PositionSide(row["side"]),
                entry_time=to_datetime(row["entry_ts"]),
                exit_time=to_datetime(row["exit_ts"]),
                entry_price=row["entry_price"],
                exit_price=row["exit_price"],
                quantity=row["quantity"],
                pnl=row["pnl"],
                fees=row["fees"],
                net_return=row["net_return"],
            )
            for row in frame.iter_rows(named=True)
        ]

    @strawberry.field(
        description="Null until a backtest succeeds, and for a sweep's runs (their curves are "
        "not kept: run the params again with runBacktest). A walk-forward's is its stitched "
        "out-of-sample curve."
    )
    async def equity(self, info: strawberry.Info[Context, None]) -> EquityCurve | None:
        if self.record.status != "SUCCEEDED" or self.record.kind == "sweep":
            return None
        frame = await backtest_service(info).equity(self.record.id)
        if frame.height == 0:
            return None
        # Whole columns at once: a year of minutes is 525,600 points.
        return EquityCurve(
            ts=FloatColumn.of((frame["ts"] // NS_PER_MS).cast(pl.Float64).to_list()),
            equity=FloatColumn.of(frame["equity"].to_list()),
            position=FloatColumn.of(frame["position"].to_list()),
        )


@strawberry.type(description="A page of backtests, newest first.")
class BacktestPage:
    items: list[Backtest]
    next_cursor: str | None = strawberry.field(
        description="Pass as `cursor` for the next page; null on the last page."
    )


@strawberry.input(one_of=True, description="How much each entry buys: give exactly one.")
class SizingInput:
    quantity: float | None = strawberry.field(
        default=strawberry.UNSET, description="A fixed base quantity, e.g. 0.5 (BTC)."
    )
    fraction: float | None = strawberry.field(
        default=strawberry.UNSET, description="A fraction (0, 1] of equity, fees included."
    )


@strawberry.input(
    description="One backtest over stored candles with start <= ts < end. Fields left out take "
    "the defaults shown in their descriptions."
)
class BacktestInput:
    exchange: str
    symbol: str
    timeframe: str = strawberry.field(description="One of the stored timeframes.")
    strategy: str = strawberry.field(description="A name from the `strategies` query.")
    start: datetime
    end: datetime
    params: JSON | None = strawberry.field(
        default=None, description="Parameter values by name; defaults fill the rest."
    )
    starting_balance: float | None = strawberry.field(default=None, description="10000.")
    currency: str | None = strawberry.field(
        default=None, description="Must be the symbol's quote currency, if given."
    )
    maker_fee: float | None = strawberry.field(
        default=None, description="Fraction of notional; 0.001 (10 bp)."
    )
    taker_fee: float | None = strawberry.field(
        default=None, description="Fraction of notional; 0.001 (10 bp)."
    )
    account_type: AccountType | None = strawberry.field(
        default=None, description="CASH (MARGIN for a LONG_SHORT strategy)."
    )
    leverage: float | None = strawberry.field(default=None, description="1 (MARGIN only).")
    sizing: SizingInput | None = strawberry.field(
        default=None, description="All equity: fraction 1."
    )


@strawberry.input(
    name="BacktestFilter", description="Which backtests to list; every field given must match."
)
class BacktestFilterInput:
    status: BacktestStatus | None = None
    kind: BacktestKind | None = None
    strategy: str | None = None
    exchange: str | None = None
    symbol: str | None = None
    sweep_id: strawberry.ID | None = strawberry.field(
        default=None, description="Only the runs of this sweep."
    )
    include_sweep_runs: bool = strawberry.field(
        default=False, description="Also list sweeps' runs (left out unless `sweepId` is given)."
    )


def backtest_service(info: strawberry.Info[Context, None]) -> BacktestService:
    """The context's backtest service (a server without one is a bug, masked as INTERNAL)."""
    service = info.context.backtests
    if service is None:
        raise RuntimeError("this server runs no backtest service")
    return service
