"""The whole store: `Store`, what one implementation offers, and `StoreError`.

Each consumer depends on the narrow part it uses: `db.candle_store.CandleStore`,
`db.indicator_store.IndicatorStore`, `db.backtest_store.BacktestStore`. Two implementations
offer them all and pass one contract test suite (`tests/db/test_store_contract.py`):
`db.sqlite.SqliteStore` (embedded, the default) and `db.questdb.QuestDBStore` (production),
each assembled from one module per part (`db.sqlite_candles`, `db.questdb_backtests`, ...).
`server.stores.open_store` is the one place that picks one.

Tables: `candles` (key exchange, symbol, timeframe, ts), `indicators` (key exchange, symbol,
timeframe, ts, name), `known_gaps` (key exchange, symbol, timeframe, start), `backtests` (key
id) with `backtest_trades` and `backtest_equity`.
"""

from __future__ import annotations

from typing import Protocol

from db.backtest_store import BacktestStore
from db.candle_store import CandleStore
from db.indicator_store import IndicatorStore


class StoreError(Exception):
    """A store could not be reached, or refused a read or write."""


class Store(CandleStore, IndicatorStore, BacktestStore, Protocol):
    #: True when reads come from a local file, so a small one takes microseconds (the API then
    #: runs it on its event loop rather than in a worker thread: `graphql_schema.reads`).
    local_reads: bool

    def ping(self) -> None:
        """Raise `StoreError` unless the store answers a trivial read."""
        ...

    def close(self) -> None: ...
