"""User strategies end to end: a GraphQL server and a `candlegraph worker` process, each given
its CANDLEGRAPH_STRATEGY_PATH, over one store and one NATS server, all real.

The server's path has one directory more than the worker's, as a worker machine missing a
file would: the job naming that strategy fails with a clear error, and the worker goes on to
run the next job, a user strategy both know. A broken file on both paths is reported by each
at start-up and stops neither.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from db.sqlite import SqliteStore
from server.app import create_app
from server.settings import Settings
from strategies.registry import load_registry
from strategies.result import Metrics
from strategies.runner import run_backtest
from strategies.spec import BacktestSpec
from tests.conditions import wait_until
from tests.graphql.clients import post
from tests.server.test_backtest_distribution import (
    SWEEP,
    Worker,
    finished,
    iso,
    record,
    submit,
)
from tests.servers import NatsServer, UvicornServer
from tests.walks import MINUTE, T0, minute_walk

EXAMPLES = Path(__file__).parents[2] / "examples" / "strategies"
BARS = 2_000
SEARCH = """mutation($input: BacktestInput!, $search: SearchInput!) {
  runSweep(input: $input, search: $search, rankBy: "sharpe") { id } }"""
STRATEGIES = "{ strategies { name direction source { kind file distribution entryPoint } } }"


@pytest.fixture(scope="module")
def paths(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("user-strategies")
    broken, server_only = root / "broken", root / "server-only"
    broken.mkdir()
    server_only.mkdir()
    (broken / "half_written.py").write_text("class Half(:\n")
    shutil.copy(EXAMPLES / "sma_band.py", server_only / "only_here.py")
    return root, broken, server_only


@pytest.fixture(scope="module")
def worker_settings(paths: tuple[Path, Path, Path], nats_server: NatsServer) -> Settings:
    root, broken, _ = paths
    settings = Settings(
        data_dir=root, nats_url=nats_server.url, timeframes=("1m",), log_format="text",
        strategy_path=(EXAMPLES, broken),
    )
    store = SqliteStore(settings.store_path)
    store.upsert_candles(minute_walk(BARS, symbol="SOL-USDT"))
    store.close()
    return settings


@pytest.fixture(scope="module")
def worker(worker_settings: Settings) -> Iterator[Worker]:
    worker = Worker(worker_settings, worker_settings.data_dir / "worker.log")
    yield worker
    worker.stop()


def band_input(strategy: str) -> dict[str, Any]:
    return {
        "exchange": "sim", "symbol": "SOL-USDT", "timeframe": "1m", "strategy": strategy,
        "start": iso(T0), "end": iso(T0 + BARS * MINUTE),
        "params": {"period": 30, "enter_above": 0.002, "exit_below": 0.001},
    }


def test_user_strategies_are_listed_and_run_where_the_workers_have_them(
    worker: Worker, worker_settings: Settings, paths: tuple[Path, Path, Path],
    caplog: pytest.LogCaptureFixture,
) -> None:
    _, broken, server_only = paths
    settings = worker_settings.with_overrides(
        strategy_path=(*worker_settings.strategy_path, server_only)
    )
    with caplog.at_level(logging.ERROR, logger="server.user_strategies"):
        server = UvicornServer(create_app(settings))
    try:
        listed = post(server, STRATEGIES)["data"]["strategies"]
        missing = submit(server, band_input("only_here"))
        known = submit(server, band_input("sma_band"))
        ended_missing = finished(worker_settings, missing)
        ended_known = finished(worker_settings, known)
        sweep = post(server, SWEEP, input=band_input("sma_band"), grid={"period": [20, 30]})
        ended_sweep = finished(worker_settings, sweep["data"]["runSweep"]["id"])
        # Two batches: the worker asks the second from the strategy's own parameters.
        search = post(server, SEARCH, input=band_input("sma_band"),
                      search={"method": "RANDOM", "trials": 4, "batch": 2, "seed": 7,
                              "space": {"period": {"min": 10, "max": 60}}})
        ended_search = finished(worker_settings, search["data"]["runSweep"]["id"])
    finally:
        server.stop()

    left_out = f"strategy left out: {broken / 'half_written.py'}: SyntaxError"
    reported = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(reported) == 1 and reported[0].startswith(left_out)
    sources = {s["name"]: s["source"] for s in listed}
    assert sources["sma_band"] == {"kind": "PATH", "file": str(EXAMPLES / "sma_band.py"),
                                   "distribution": None, "entryPoint": None}
    assert sources["only_here"]["file"] == str(server_only / "only_here.py")
    assert sources["ema_cross"]["kind"] == "BUILTIN"
    assert "half_written" not in sources
    assert ended_missing.status == "FAILED"
    assert ended_missing.error == (
        f"the worker {worker.name} has no strategy 'only_here' (it has bollinger_breakout,"
        " donchian_breakout, donchian_long_short, ema_cross, macd_trend, rsi_reversion,"
        " sma_band, trend_pullback); every worker needs the strategy too: the same"
        " CANDLEGRAPH_STRATEGY_PATH files, or the same package installed"
    )
    assert (ended_known.status, ended_known.worker) == ("SUCCEEDED", worker.name)
    assert worker.proc.poll() is None
    wait_until(lambda: left_out in worker.log(), timeout_s=10, what="the worker's report")
    expected = _direct(worker_settings, band_input("sma_band"))
    stored = msgspec.json.decode(record(worker_settings, known).metrics_json or "", type=Metrics)
    assert stored == expected
    # The worker ranks a sweep of a user strategy when its last run ends.
    ranking = msgspec.json.decode(ended_sweep.metrics_json or "")
    assert ended_sweep.status == "SUCCEEDED"
    assert sorted(run["params"]["period"] for run in ranking["runs"]) == [20, 30]
    searched = msgspec.json.decode(ended_search.metrics_json or "")
    assert (ended_search.status, ended_search.error) == ("SUCCEEDED", None)
    periods = [run["params"]["period"] for run in searched["runs"]]
    assert len(set(periods)) == 4 and all(10 <= period <= 60 for period in periods)


def _direct(settings: Settings, input: dict[str, Any]) -> Metrics:
    spec = BacktestSpec(exchange="sim", symbol="SOL-USDT", timeframe="1m",
                        strategy=input["strategy"], params=input["params"])
    store = SqliteStore(settings.store_path)
    try:
        frame = store.candles_frame("sim", "SOL-USDT", "1m", T0, T0 + BARS * MINUTE)
    finally:
        store.close()
    return run_backtest(frame, spec, registry=load_registry(settings.strategy_path)).metrics
