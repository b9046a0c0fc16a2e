"""The store interface that the flow, the API and the backtests share.

Two implementations pass one contract test suite (`tests/db/test_store_contract.py`):
`db.sqlite.SqliteStore` (embedded, the default) and `db.questdb.QuestDBStore` (production).
Timestamps are integer nanoseconds since the epoch, UTC. Every write is an upsert on its
natural key, so replays and corrections never duplicate rows.

Tables: `candles` (key exchange, symbol, timeframe, ts), `indicators` (key exchange, symbol,
timeframe, ts, name), `backtests` (key id) with `backtest_trades` and `backtest_equity`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal, NamedTuple, Protocol

import msgspec
import polars as pl

from market.messages import Candle


class StoreError(Exception):
    """A store could not be reached, or refused a read or write."""


class IndicatorPoint(NamedTuple):
    """One indicator value at the close of one candle.

    `name` is e.g. `sma_20` or `macd_12_26_9.hist`.
    """

    exchange: str
    symbol: str
    timeframe: str
    ts: int
    name: str
    value: float


class IndicatorValues(NamedTuple):
    """The indicator values at the close of one candle, by name (`{"sma_20": 101.25}`): what
    the flow has per final candle, written without a row object per value."""

    exchange: str
    symbol: str
    timeframe: str
    ts: int
    values: Mapping[str, float]


class SymbolSummary(NamedTuple):
    """A market with stored candles: its first and latest candle start, and its last price.

    `last_price` is the close of the stored candle that ends last, across timeframes (a finer
    one on a tie): the flow stores closed candles, and that one holds the latest trade.
    """

    exchange: str
    symbol: str
    first_ns: int
    last_ns: int
    last_price: float


BacktestStatus = Literal["QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"]


class BacktestRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One backtest run as stored. `spec_json` and `metrics_json` are opaque JSON to the store.

    `sweep_id` groups the runs of one parameter sweep (a sweep's own record has `kind="sweep"`).
    `attempt` is the delivery of the run's queued job that owns the record (0 until a worker
    claims it, 2 or more after a retry), and `worker` names the worker process holding it.
    """

    id: str
    kind: Literal["backtest", "sweep"] = "backtest"
    status: BacktestStatus
    strategy: str
    exchange: str
    symbol: str
    timeframe: str
    start_ns: int
    end_ns: int
    created_ns: int
    started_ns: int | None = None
    finished_ns: int | None = None
    progress: float = 0.0
    error: str | None = None
    spec_json: str = "{}"
    metrics_json: str | None = None
    sweep_id: str | None = None
    attempt: int = 0
    worker: str | None = None


class Store(Protocol):
    #: True when reads come from a local file, so a small one takes microseconds (the API then
    #: runs it on its event loop rather than in a worker thread: `graphql_schema.reads`).
    local_reads: bool

    # Candles -------------------------------------------------------------------------------
    def upsert_candles(self, candles: Sequence[Candle]) -> None:
        """Insert or replace candles keyed by (exchange, symbol, timeframe, ts), durably.

        Returns only once the rows are committed (the flow acks its input after this);
        raises `StoreError` otherwise.
        """
        ...

    def candles(
        self,
        exchange: str,
        symbol: str,
        timeframe: str,
        *,
        start_ns: int | None = None,
        end_ns: int | None = None,
        limit: int = 1000,
        from_start: bool = False,
    ) -> list[Candle]:
        """Candles with start_ns <= ts < end_ns, oldest first.

        The newest `limit` of them, or with `from_start` the oldest `limit` (for paging forward).
        """
        ...

    def candles_frame(
        self,
        exchange: str,
        symbol: str,
        timeframe: str,
        start_ns: int | None = None,
        end_ns: int | None = None,
        *,
        limit: int | None = None,
        from_start: bool = False,
        columns: Sequence[str] | None = None,
    ) -> pl.DataFrame:
        """Candles with start_ns <= ts < end_ns as columns (`CANDLE_SCHEMA`), oldest first.

        All of them, or the newest `limit` (with `from_start`, the oldest), as in `candles`.
        Columns cost no Python object per candle: the path for backtests and chart series.
        `columns` reads only those (and `ts`), in schema order (`frame_columns`).
        """
        ...

    def resample(
        self,
        exchange: str,
        symbol: str,
        source_timeframe: str,
        timeframe: str,
        *,
        start_ns: int | None = None,
        end_ns: int | None = None,
        limit: int = 1000,
        from_start: bool = False,
    ) -> list[Candle]:
        """Candles of `timeframe` built from the stored `source_timeframe` (which divides it).

        Buckets align to the epoch in UTC like stored ones. open/close are the first/last
        source candle's, high/low the extremes, volume and trades the sums, vwap the
        volume-weighted mean of the source vwaps. A bucket is `closed` when all its source
        candles are closed and the bucket's end is not after the latest source candle's end.
        Selection and order as in `candles`.
        """
        ...

    def latest_candles(self, timeframe: str, exchange: str | None = None) -> list[Candle]:
        """The latest candle of `timeframe` per (exchange, symbol), sorted by exchange, symbol."""
        ...

    def symbols(self) -> list[tuple[str, str]]:
        """Every (exchange, symbol) with stored candles, sorted."""
        ...

    def symbol_summaries(self) -> list[SymbolSummary]:
        """Every market with stored candles, sorted by exchange, symbol."""
        ...

    # Indicators ----------------------------------------------------------------------------
    def upsert_indicators(self, points: Sequence[IndicatorPoint]) -> None:
        """Insert or replace values keyed by (exchange, symbol, timeframe, ts, name), durably."""
        ...

    def upsert_indicator_values(self, rows: Sequence[IndicatorValues]) -> None:
        """`upsert_indicators` of every value of every row."""
        ...

    def indicators(
        self,
        exchange: str,
        symbol: str,
        timeframe: str,
        names: Sequence[str] | None = None,
        *,
        start_ns: int | None = None,
        end_ns: int | None = None,
        limit: int = 1000,
    ) -> pl.DataFrame:
        """The newest `limit` timestamps in range, oldest first, one row per ts.

        Columns: `ts` (Int64) then one Float64 column per name (all stored names when `names` is
        None, sorted), null where that name has no value at that ts.
        """
        ...

    # Backtests -----------------------------------------------------------------------------
    def put_backtest(self, record: BacktestRecord) -> None:
        """Insert or replace the record with this id."""
        ...

    def put_backtest_results(self, id: str, trades: pl.DataFrame, equity: pl.DataFrame) -> None:
        """Store a finished run's trades (`BACKTEST_TRADE_SCHEMA`) and equity curve
        (`BACKTEST_EQUITY_SCHEMA`), replacing any stored for this id."""
        ...

    def swap_backtest(
        self,
        expected: BacktestRecord,
        record: BacktestRecord,
        *,
        trades: pl.DataFrame | None = None,
        equity: pl.DataFrame | None = None,
    ) -> bool:
        """Compare and set: replace the stored record with `record` (same id), and store
        `trades` and `equity` as `put_backtest_results` does when given, only if the stored
        record still equals `expected` field for field. False (and nothing written) otherwise:
        someone changed it since `expected` was read."""
        ...

    def backtest(self, id: str) -> BacktestRecord | None: ...

    def backtests(
        self,
        *,
        status: str | None = None,
        strategy: str | None = None,
        exchange: str | None = None,
        symbol: str | None = None,
        sweep_id: str | None = None,
        created_before_ns: int | None = None,
        limit: int = 100,
    ) -> list[BacktestRecord]:
        """Records matching every given filter, newest `created_ns` first (then id)."""
        ...

    def backtest_counts(self, sweep_id: str) -> dict[str, int]:
        """How many runs of the sweep `sweep_id` are in each status (statuses with none left
        out)."""
        ...

    def backtest_trades(self, id: str, *, offset: int = 0, limit: int = 100) -> pl.DataFrame:
        """Trades of one run ordered by exit_ts then position_id, as `BACKTEST_TRADE_SCHEMA`."""
        ...

    def backtest_equity(self, id: str) -> pl.DataFrame:
        """The equity curve of one run, oldest first, as `BACKTEST_EQUITY_SCHEMA`."""
        ...

    # Lifecycle -----------------------------------------------------------------------------
    def ping(self) -> None:
        """Raise `StoreError` unless the store answers a trivial read."""
        ...

    def close(self) -> None: ...


CANDLE_SCHEMA: dict[str, pl.DataType] = {
    "ts": pl.Int64(),
    "open": pl.Float64(),
    "high": pl.Float64(),
    "low": pl.Float64(),
    "close": pl.Float64(),
    "volume": pl.Float64(),
    "trades": pl.Int64(),
    "vwap": pl.Float64(),
}


def frame_columns(columns: Sequence[str] | None) -> dict[str, pl.DataType]:
    """The `CANDLE_SCHEMA` columns a frame read returns: `ts` and those asked for (all for
    None), in schema order. Unknown names raise ValueError, so SQL only ever names these."""
    if columns is None:
        return CANDLE_SCHEMA
    unknown = set(columns) - CANDLE_SCHEMA.keys()
    if unknown:
        raise ValueError(f"no candle column {', '.join(sorted(unknown))}")
    return {name: dtype for name, dtype in CANDLE_SCHEMA.items()
            if name == "ts" or name in columns}


BACKTEST_TRADE_SCHEMA: dict[str, pl.DataType] = {
    "position_id": pl.String(),
    "side": pl.String(),
    "entry_ts": pl.Int64(),
    "exit_ts": pl.Int64(),
    "entry_price": pl.Float64(),
    "exit_price": pl.Float64(),
    "quantity": pl.Float64(),
    "pnl": pl.Float64(),
    "fees": pl.Float64(),
    "net_return": pl.Float64(),
}

BACKTEST_EQUITY_SCHEMA: dict[str, pl.DataType] = {
    "ts": pl.Int64(),
    "equity": pl.Float64(),
    "position": pl.Float64(),
}
