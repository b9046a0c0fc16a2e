"""A GraphQL server of its own for a test module: settings of the test's choosing over a seeded
SQLite store, served by `tests.servers.LiveApi`; and the candles to seed it with."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from db.sqlite import SqliteStore
from market.messages import Candle
from server.settings import Settings
from tests.servers import LiveApi

S = 1_000_000_000


def serve(
    data_dir: Path,
    nats_url: str,
    candles: Iterable[Candle] = (),
    *,
    send_buffer: int | None = None,
    **settings: Any,
) -> LiveApi:
    """The app on loopback over a store holding `candles`."""
    config = Settings(data_dir=data_dir, nats_url=nats_url, **settings)
    store = SqliteStore(config.store_path)
    store.upsert_candles(list(candles))
    store.close()
    return LiveApi(config, send_buffer=send_buffer)


def iso(ts_ns: int) -> str:
    """How the API writes a candle's `ts`."""
    return datetime.fromtimestamp(ts_ns // S, UTC).isoformat()


def closed_candle(symbol: str, ts_ns: int, trades: int = 1, timeframe: str = "1s") -> Candle:
    price = 100.0 + trades
    return Candle("sim", symbol, timeframe, ts_ns, price, price + 1, price - 1, price,
                  float(trades), trades, price, True)
