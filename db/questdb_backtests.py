"""The production store's backtests (`db.backtest_store.BacktestStore`), a part of
`QuestDBStore`.

Nanosecond times of backtests (created, trade entry and exit, equity points) are kept in LONG
columns, exact. A record is one row keyed by (created_ns as ts, id), so each write replaces it.
Results are replaced without DELETE (QuestDB has none): each write of them puts its rows under
a new generation number, then records that generation in `backtest_results`; reads follow
the latest generation recorded there.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import polars as pl
from psycopg.types.numeric import Int8
from questdb import QuestDBError, TimestampNanos

from db.backtest_store import BACKTEST_EQUITY_SCHEMA, BACKTEST_TRADE_SCHEMA, BacktestRecord
from db.ilp import results_dataframes
from db.questdb_connection import QuestDBConnection
from db.rows import BACKTEST_COLUMNS, backtest_record
from db.store import StoreError


class QuestDBBacktests(QuestDBConnection):
    """`BacktestStore` over the `backtests`, `backtest_results`, `backtest_trades` and
    `backtest_equity` tables. `clock` numbers the generations of results."""

    def __init__(
        self, http_url: str, pg_url: str = "", *, clock: Callable[[], int] = time.time_ns,
        **options: Any,
    ) -> None:
        super().__init__(http_url, pg_url, **options)
        self._clock = clock
        self._last_gen_us = 0

    def put_backtest(self, record: BacktestRecord) -> None:
        with self._write_lock:
            self._put_backtest_locked(record)

    def _put_backtest_locked(self, record: BacktestRecord) -> None:
        symbols = {
            "id": record.id, "kind": record.kind, "status": record.status,
            "strategy": record.strategy, "exchange": record.exchange, "symbol": record.symbol,
            "timeframe": record.timeframe, "sweep_id": record.sweep_id,
        }
        # Any: the element type questdb takes is an alias of its private `_client` module.
        columns: dict[str, Any] = {
            "start_ns": record.start_ns, "end_ns": record.end_ns,
            "created_ns": record.created_ns, "started_ns": record.started_ns,
            "finished_ns": record.finished_ns, "progress": float(record.progress),
            "error": record.error, "spec_json": record.spec_json,
            "metrics_json": record.metrics_json, "attempt": record.attempt,
            "worker": record.worker,
        }
        try:
            self._sender.row(
                self._t["backtests"], symbols=symbols, columns=columns,
                at=TimestampNanos(record.created_ns),
            )
            self._sender.flush()
        except QuestDBError as error:
            raise StoreError(
                f"writing backtest {record.id} to {self._http_url}: {error}"
            ) from error
        self._await_applied(["backtests"])

    def put_backtest_results(self, id: str, trades: pl.DataFrame, equity: pl.DataFrame) -> None:
        with self._write_lock:
            self._put_results_locked(id, trades, equity)

    def _put_results_locked(self, id: str, trades: pl.DataFrame, equity: pl.DataFrame) -> None:
        gen_us = self._last_gen_us = max(self._clock() // 1000, self._last_gen_us + 1)
        frames = results_dataframes(id, gen_us, trades, equity)
        marker = {"backtest_results": frames.pop("backtest_results")}
        what = f"writing the results of backtest {id}"
        # The rows first, the generation marker once they are applied: readers follow the
        # marker, so they never see half of a generation.
        self._send_locked(what, frames)
        self._send_locked(what, marker)

    def swap_backtest(
        self,
        expected: BacktestRecord,
        record: BacktestRecord,
        *,
        trades: pl.DataFrame | None = None,
        equity: pl.DataFrame | None = None,
    ) -> bool:
        # QuestDB has no transaction spanning a read and a write: the compare and the set are
        # atomic among the threads of this process only. Across processes, a write landing
        # between this read and this write (a few milliseconds) is not seen.
        if record.id != expected.id:
            raise ValueError(f"swap_backtest: ids differ ({expected.id!r}, {record.id!r})")
        with self._write_lock:
            if self.backtest(record.id) != expected:
                return False
            if trades is not None or equity is not None:
                self._put_results_locked(
                    record.id,
                    trades if trades is not None else pl.DataFrame(schema=BACKTEST_TRADE_SCHEMA),
                    equity if equity is not None else pl.DataFrame(schema=BACKTEST_EQUITY_SCHEMA),
                )
            self._put_backtest_locked(record)
        return True

    def backtest(self, id: str) -> BacktestRecord | None:
        rows = self._query(
            f"SELECT {', '.join(BACKTEST_COLUMNS)} FROM {self._t['backtests']} WHERE id = %s",
            (id,),
        )
        return backtest_record(rows[-1]) if rows else None

    def backtest_counts(self, sweep_id: str) -> dict[str, int]:
        rows = self._query(
            f"SELECT status, count(*) FROM {self._t['backtests']} WHERE sweep_id = %s"
            " GROUP BY status",
            (sweep_id,),
        )
        return {status: count for status, count in rows}

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
        if limit <= 0:
            return []
        filters = {
            "status = %s": status, "strategy = %s": strategy, "exchange = %s": exchange,
            "symbol = %s": symbol, "sweep_id = %s": sweep_id,
            "created_ns < %s": None if created_before_ns is None else Int8(created_before_ns),
        }
        given = {clause: value for clause, value in filters.items() if value is not None}
        where = f"WHERE {' AND '.join(given)}" if given else ""
        rows = self._query(
            f"SELECT {', '.join(BACKTEST_COLUMNS)} FROM {self._t['backtests']} {where}"
            f" ORDER BY created_ns DESC, id LIMIT {int(limit)}",
            list(given.values()),
        )
        return [backtest_record(row) for row in rows]

    def backtest_trades(self, id: str, *, offset: int = 0, limit: int = 100) -> pl.DataFrame:
        gen = self._results_gen(id)
        rows: list[tuple] = []
        if gen is not None and limit > 0:
            lo = max(int(offset), 0)
            rows = self._query(
                f"SELECT {', '.join(BACKTEST_TRADE_SCHEMA)} FROM (SELECT * FROM"
                f" {self._t['backtest_trades']} WHERE id = %s AND ts = cast(%s AS TIMESTAMP)"
                f" ORDER BY exit_ts, position_id, seq LIMIT {lo}, {lo + int(limit)})",
                (id, Int8(gen)),
            )
        return pl.DataFrame(rows, schema=BACKTEST_TRADE_SCHEMA, orient="row")

    def backtest_equity(self, id: str) -> pl.DataFrame:
        gen = self._results_gen(id)
        rows: list[tuple] = []
        if gen is not None:
            rows = self._query(
                f"SELECT at_ns, equity, position FROM {self._t['backtest_equity']}"
                " WHERE id = %s AND ts = cast(%s AS TIMESTAMP) ORDER BY at_ns",
                (id, Int8(gen)),
            )
        return pl.DataFrame(rows, schema=BACKTEST_EQUITY_SCHEMA, orient="row")

    def _results_gen(self, id: str) -> int | None:
        rows = self._query(
            f"SELECT gen FROM {self._t['backtest_results']} WHERE id = %s"
            " LATEST ON ts PARTITION BY id",
            (id,),
        )
        return rows[0][0] if rows else None
