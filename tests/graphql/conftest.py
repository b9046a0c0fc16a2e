"""A GraphQL server on loopback over a real SQLite store and a real NATS server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from db.sqlite import SqliteStore
from market.messages import Candle
from server.app import create_app
from server.settings import Settings
from tests.servers import NatsServer, UvicornServer

S = 1_000_000_000
T0 = 1_700_000_040 * S  # 2023-11-14T22:14:00Z


def sample_candles(n: int = 30) -> list[Candle]:
    return [
        Candle("sim", "BTC-USDT", "1s", T0 + i * S, 100.0 + i, 101.5 + i, 99.25 + i, 100.5 + i,
               1.25 * (i + 1), i + 1, 100.25 + i, True)
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory, nats_server: NatsServer) -> Settings:
    return Settings(
        data_dir=tmp_path_factory.mktemp("api"), nats_url=nats_server.url, max_candles=500
    )


@pytest.fixture(scope="module")
def api(settings: Settings) -> Iterator[UvicornServer]:
    store = SqliteStore(Path(settings.store_path))
    store.upsert_candles(sample_candles())
    store.upsert_candles([Candle("binance", "ETH-USDT", "1m", T0, 1, 2, 0.5, 1.5, 3, 4, 1.2, True)])
    server = UvicornServer(create_app(settings))
    yield server
    server.stop()
