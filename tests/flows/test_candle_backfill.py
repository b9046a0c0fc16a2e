"""`CandleBackfill` against the fake Binance: paging, resuming, repairing, remembering gaps."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from db.sqlite import SqliteStore
from flows.candle_backfill import BackfillReport, BackfillRequest, CandleBackfill
from flows.exchanges import open_exchange
from market.indicators import parse_indicators
from market.messages import Candle
from tests.fake_binance import FakeBinance, kline_rows

S = 1_000_000_000
M = 60 * S
T0_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z
T0 = T0_MS * 1_000_000
INDICATORS = parse_indicators("sma:20,ema:20")


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeBinance]:
    fake = FakeBinance().start()
    yield fake
    fake.stop()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    store = SqliteStore(tmp_path / "store.sqlite")
    yield store
    store.close()


class Counting:
    """Progress that stops the backfill once `stop_after` candles are done."""

    def __init__(self, stop: asyncio.Event, stop_after: int | None = None) -> None:
        self.stop, self.stop_after, self.done = stop, stop_after, 0

    def begin(self, what: str, total: int) -> None:
        self.total = total

    def advance(self, candles: int) -> None:
        self.done += candles
        if self.stop_after is not None and self.done >= self.stop_after:
            self.stop.set()

    def end(self) -> None:
        pass


def expected(rows: list[list[Any]]) -> list[Candle]:
    return [Candle("binance", "BTC-USDT", "1m", r[0] * 1_000_000, float(r[1]), float(r[2]),
                   float(r[3]), float(r[4]), float(r[5]), None, None, True) for r in rows]


def backfill(fake: FakeBinance, store: SqliteStore, *, minutes: int, repair: bool = False,
             stop_after: int | None = None, since: int | None = T0) -> BackfillReport:
    async def run() -> BackfillReport:
        stop = asyncio.Event()
        exchange = open_exchange("binance", fake.ccxt_config(), streaming=False)
        job = CandleBackfill(exchange, store, INDICATORS, progress=Counting(stop, stop_after),
                             stop=stop, backoff_s=0.01, backoff_max_s=0.05)
        try:
            return await job.run(BackfillRequest(
                "binance", ("BTC-USDT",), ("1m",), since, T0 + minutes * M, repair=repair
            ))
        finally:
            await exchange.close()

    return asyncio.run(run())


def klines_asked(fake: FakeBinance) -> list[int]:
    return [int(r.query["startTime"]) for r in fake.requests_to("/klines") if r.status == 200]


def stored(store: SqliteStore) -> list[Candle]:
    return store.candles("binance", "BTC-USDT", "1m", limit=100_000)


def test_an_interrupted_backfill_resumes_and_fetches_nothing_twice(
    fake: FakeBinance, store: SqliteStore, tmp_path: Path
) -> None:
    rows = kline_rows(T0_MS, 2500)
    fake.set_klines("BTCUSDT", "1m", rows)
    fake.requests.clear()
    fake.fail_next(2)  # a rate limit on the way slows the first page down
    first = backfill(fake, store, minutes=2500, stop_after=1500)
    assert first.stopped and first.candles == 2000
    second = backfill(fake, store, minutes=2500)
    assert not second.stopped and second.candles == 500
    assert klines_asked(fake) == [T0_MS, T0_MS + 1000 * 60_000, T0_MS + 2000 * 60_000]
    assert stored(store) == expected(rows)
    # The same indicators as one uninterrupted run (SMA and a converged EMA: 2,000 candles
    # of warm-up from the store).
    whole = SqliteStore(tmp_path / "whole.sqlite")
    backfill(fake, whole, minutes=2500)
    got = store.indicators("binance", "BTC-USDT", "1m", limit=10_000)
    want = whole.indicators("binance", "BTC-USDT", "1m", limit=10_000)
    assert got["ts"].to_list() == want["ts"].to_list()
    assert got["sma_20"].to_list() == pytest.approx(want["sma_20"].to_list(), rel=1e-9)
    assert got["ema_20"].to_list() == pytest.approx(want["ema_20"].to_list(), rel=1e-9)
    whole.close()


def test_a_second_run_fetches_only_what_is_new(fake: FakeBinance, store: SqliteStore) -> None:
    rows = kline_rows(T0_MS, 300, seed=2)
    fake.set_klines("BTCUSDT", "1m", rows)
    backfill(fake, store, minutes=200)
    fake.requests.clear()
    report = backfill(fake, store, minutes=300, since=None)
    assert klines_asked(fake) == [T0_MS + 200 * 60_000]
    assert report.candles == 100 and stored(store) == expected(rows)


def test_repair_fetches_exactly_the_holes_and_remembers_the_exchanges_own_gaps(
    fake: FakeBinance, store: SqliteStore
) -> None:
    outage = range(100, 130)  # the exchange has no candles there
    rows = kline_rows(T0_MS, 400, seed=3, skip=outage)
    fake.set_klines("BTCUSDT", "1m", rows)
    candles = expected(rows)
    holes = {*range(10, 15), *range(95, 135), 250}  # minutes missing from the store
    store.upsert_candles([c for c in candles if (c.ts - T0) // M not in holes])
    fake.requests.clear()
    report = backfill(fake, store, minutes=400, repair=True)
    assert klines_asked(fake) == [T0_MS + m * 60_000 for m in (10, 95, 250)]
    assert stored(store) == candles
    assert report.candles == 5 + 10 + 1
    assert store.known_gaps("binance", "BTC-USDT", "1m") == [(T0 + 100 * M, T0 + 130 * M)]
    fake.requests.clear()
    again = backfill(fake, store, minutes=400, repair=True)
    assert klines_asked(fake) == [] and again.candles == 0
