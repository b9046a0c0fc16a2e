"""What a store does with backtests: `BacktestStore`, the stored record and result columns.

Implemented by `db.sqlite_backtests` and `db.questdb_backtests`. A record is keyed by its id;
a run's trades and equity curve hang off it. What the record's JSON fields hold, and the
rules of its life, are `strategies`' (`strategies.jobs`); the store only keeps them, with a
compare-and-set write so that concurrent writers never lose a change. Failures raise
`db.store.StoreError`.
"""

from __future__ import annotations

from typing import Literal, Protocol

import msgspec
import polars as pl

BacktestStatus = Literal["QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"]


class BacktestRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One backtest run as stored. `spec_json` and `metrics_json` are opaque JSON to the store.

    `sweep_id` groups the runs of one parameter sweep (a sweep's own record has `kind="sweep"`),
    and the in-sample sweeps and out-of-sample runs of one walk-forward (`kind="walkforward"`).
    `attempt` is the delivery of the run's queued job that owns the record (0 until a worker
    claims it, 2 or more after a retry), and `worker` names the worker process holding it.
    """

    id: str
    kind: Literal["backtest", "sweep", "walkforward"] = "backtest"
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



class BacktestStore(Protocol):
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
