"""What the backtest service adds to a backtest: queueing, a worker process, stored results.

Prints, for an EMA cross (fast 50, slow 200) over 100,000 one-minute candles in a fresh
embedded store, with a warm pool of 2 workers:
- `service_submit_ms`: median time for `submit` to check the input and store the QUEUED record;
- `service_backtest_s`: submit to SUCCEEDED, results stored;
- `direct_backtest_s`: the same run in this process (`candles_frame` + `run_backtest`);
- `service_overhead_s`: the difference;
- `service_sweep_4_s`: a sweep of 4 such runs on the 2 workers, submit to SUCCEEDED.

Run: `python bench/backtest_service.py`.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import msgspec
import numpy as np

from db.sqlite import SqliteStore
from graphql_schema.backtest_service import TERMINAL, BacktestRequest
from market.messages import Candle
from server.backtests import BacktestService
from server.settings import Settings
from strategies.runner import run_backtest
from strategies.spec import BacktestSpec

MINUTE = 60_000_000_000
T0 = 1_700_000_040_000_000_000 // MINUTE * MINUTE
BARS = 100_000
PARAMS = {"fast": 50, "slow": 200}


def minute_walk(count: int) -> list[Candle]:
    rng = np.random.default_rng(7)
    closes = np.round(100 * np.exp(np.cumsum(rng.normal(0, 0.003, count))), 2)
    opens = np.concatenate([[100.0], closes[:-1]])
    return [
        Candle("sim", "BTC-USDT", "1m", T0 + i * MINUTE, float(o), float(max(o, c)),
               float(min(o, c)), float(c), 1.5, 3, float(c), True)
        for i, (o, c) in enumerate(zip(opens, closes, strict=True))
    ]


async def finish(service: BacktestService, id: str) -> str:
    async for record in service.progress(id):
        if record.status in TERMINAL:
            return record.status
    raise RuntimeError(f"{id} ended without a terminal status")


async def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        settings = Settings(data_dir=Path(directory), backtest_workers=2)
        store = SqliteStore(settings.store_path)
        store.upsert_candles(minute_walk(BARS))
        request = BacktestRequest(
            exchange="sim", symbol="BTC-USDT", timeframe="1m", strategy="ema_cross",
            start_ns=T0, end_ns=T0 + BARS * MINUTE, params=PARAMS,
        )
        service = BacktestService(store, settings)
        await service.start()
        try:
            # Warm the pool with a short run first.
            short = msgspec.structs.replace(request, end_ns=T0 + 1000 * MINUTE)
            await finish(service, (await service.submit(short)).id)

            submits = []
            for _ in range(20):
                started = time.perf_counter()
                record = await service.submit(short)
                submits.append(time.perf_counter() - started)
                await service.cancel(record.id)

            started = time.perf_counter()
            status = await finish(service, (await service.submit(request)).id)
            service_s = time.perf_counter() - started
            assert status == "SUCCEEDED", status

            started = time.perf_counter()
            frame = store.candles_frame("sim", "BTC-USDT", "1m", T0, T0 + BARS * MINUTE)
            run_backtest(frame, BacktestSpec(exchange="sim", symbol="BTC-USDT",
                                             timeframe="1m", strategy="ema_cross",
                                             params=PARAMS))
            direct_s = time.perf_counter() - started

            started = time.perf_counter()
            sweep = await service.submit_sweep(
                request, {"fast": [20, 30, 40, 50]}, "sharpe"
            )
            status = await finish(service, sweep.id)
            sweep_s = time.perf_counter() - started
            assert status == "SUCCEEDED", status
        finally:
            await service.close()
            store.close()
    print(f"service_submit_ms: {statistics.median(submits) * 1000:.2f} ms")
    print(f"service_backtest_s: {service_s:.2f} s")
    print(f"direct_backtest_s: {direct_s:.2f} s")
    print(f"service_overhead_s: {service_s - direct_s:.2f} s")
    print(f"service_sweep_4_s: {sweep_s:.2f} s")


if __name__ == "__main__":
    asyncio.run(main())
