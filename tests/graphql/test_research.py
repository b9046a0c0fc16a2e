"""Walk-forward and RANDOM / TPE searches over real HTTP and websockets, run by a real backtest
worker process over real NATS: the right params chosen, the stitched curve, repeatable seeds,
bad arguments named. One uvicorn server with one worker process serves the whole module."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest

from db.sqlite import SqliteStore
from market.messages import Candle
from server.app import create_app
from server.settings import Settings
from tests.conditions import wait_until
from tests.graphql.test_backtests import data, direct_run, post, progress
from tests.servers import NatsServer, UvicornServer
from tests.walks import MINUTE, T0, minute_walk

TERMINAL = ("SUCCEEDED", "FAILED", "CANCELLED")
RISING_BARS = 1_200
WALK_BARS = 1_500
WALK_FORWARD = """mutation($input: BacktestInput!, $grid: JSON, $search: SearchInput,
    $folds: Int!, $trainBars: Int, $testBars: Int, $rankBy: String!) {
  runWalkForward(input: $input, grid: $grid, search: $search, folds: $folds,
    trainBars: $trainBars, testBars: $testBars, rankBy: $rankBy) { id kind status } }"""
SEARCH_SWEEP = """mutation($input: BacktestInput!, $search: SearchInput) {
  runSweep(input: $input, search: $search, rankBy: "sharpe") { id kind status } }"""
RESULT = """query($id: ID!) { backtest(id: $id) { status error
  walkForward { efficiency metrics { totalReturn tradeCount barCount }
    folds { index trainStart trainEnd testStart testEnd status sweepId testId params
            inSample { totalReturn } outOfSample { totalReturn barCount } } }
  equity { ts equity position } } }"""
RANKING = """query($id: ID!) { backtest(id: $id) { status ranking { runs { params
  metrics { sharpe } } } } }"""
EQUITY = "query($id: ID!) { backtest(id: $id) { equity { ts equity position } } }"


def iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).isoformat()


def rising(count: int) -> list[Candle]:
    """Closes that rise every minute: a breakout strategy's earliest entry earns the most."""
    closes = np.round(100 * 1.0005 ** np.arange(1, count + 1), 2)
    opens = np.concatenate([[100.0], closes[:-1]])
    return [
        Candle("sim", "SOL-USDT", "1m", T0 + i * MINUTE, float(o), float(c), float(o), float(c),
               1.0, 1, float(c), True)
        for i, (o, c) in enumerate(zip(opens, closes, strict=True))
    ]


def market(symbol: str, bars: int, strategy: str, **changes: Any) -> dict[str, Any]:
    return {
        "exchange": "sim", "symbol": symbol, "timeframe": "1m", "strategy": strategy,
        "start": iso(T0), "end": iso(T0 + bars * MINUTE), **changes,
    }


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory, nats_server: NatsServer) -> Settings:
    return Settings(
        data_dir=tmp_path_factory.mktemp("research-api"), nats_url=nats_server.url,
        timeframes=("1m",), backtest_workers=1, sweep_max_runs=30,
    )


@pytest.fixture(scope="module")
def api(settings: Settings) -> Iterator[UvicornServer]:
    store = SqliteStore(settings.store_path)
    store.upsert_candles(rising(RISING_BARS))
    store.upsert_candles(minute_walk(WALK_BARS, symbol="ETH-USDT", seed=5))
    store.close()
    server = UvicornServer(create_app(settings))
    yield server
    server.stop()


async def test_a_walk_forward_chooses_the_known_best_params_and_stitches_its_test_runs(
    api: UvicornServer, settings: Settings
) -> None:
    input = market("SOL-USDT", RISING_BARS, "donchian_breakout", params={"exit_period": 10})
    started = data(api, WALK_FORWARD, input=input, grid={"entry_period": [20, 5, 40]},
                   folds=3, trainBars=300, testBars=300, rankBy="total_return")["runWalkForward"]
    assert started["kind"] == "WALKFORWARD" and started["status"] == "QUEUED"

    events = await progress(api, started["id"], timeout_s=120)
    assert events[-1]["data"]["backtestProgress"]["status"] == "SUCCEEDED", events[-1]
    shown = [event["data"]["backtestProgress"]["progress"] for event in events]
    assert shown == sorted(shown) and shown[-1] == 1.0

    result = data(api, RESULT, id=started["id"])["backtest"]
    folds = result["walkForward"]["folds"]
    # On rising closes the earliest breakout earns most: entry_period 5, in every fold.
    assert [fold["params"] for fold in folds] == [{"entry_period": 5, "exit_period": 10}] * 3
    for index, fold in enumerate(folds):
        test_start = T0 + (300 + index * 300) * MINUTE
        windows = [datetime.fromisoformat(fold[key]).timestamp() * 1e9
                   for key in ("trainStart", "trainEnd", "testStart", "testEnd")]
        # Trained on the 300 bars just before the test window, which it never sees.
        assert windows == [test_start - 300 * MINUTE, test_start, test_start,
                           test_start + 300 * MINUTE]
        assert fold["outOfSample"]["barCount"] == 300
        # The fold's test run is the chosen params run alone on the test window.
        spec = {"exchange": "sim", "symbol": "SOL-USDT", "timeframe": "1m",
                "strategy": "donchian_breakout", "params": fold["params"]}
        alone = direct_run(settings, spec, test_start, test_start + 300 * MINUTE)
        assert fold["outOfSample"]["totalReturn"] == alone.metrics.total_return

    # The stitched curve is the folds' test runs joined, each scaled by the equity it starts on.
    joined_ts: list[float] = []
    joined_equity: list[float] = []
    scale = 1.0
    for fold in folds:
        curve = data(api, EQUITY, id=fold["testId"])["backtest"]["equity"]
        joined_ts += curve["ts"]
        joined_equity += [value * scale for value in curve["equity"]]
        scale *= curve["equity"][-1] / 10_000.0
    stitched = result["equity"]
    assert stitched["ts"] == joined_ts
    assert stitched["equity"] == pytest.approx(joined_equity, rel=1e-12)
    metrics = result["walkForward"]["metrics"]
    assert metrics["barCount"] == 900
    assert metrics["totalReturn"] == pytest.approx(scale - 1.0, rel=1e-12)


async def test_a_seeded_tpe_sweep_repeats_exactly_and_ranks_every_trial(
    api: UvicornServer,
) -> None:
    search = {"method": "TPE", "trials": 10, "seed": 42, "batch": 3,
              "space": {"fast": {"min": 3, "max": 20}, "slow": {"min": 21, "max": 60}}}
    rankings = []
    for _ in range(2):
        sweep = data(api, SEARCH_SWEEP, input=market("ETH-USDT", WALK_BARS, "ema_cross"),
                     search=search)["runSweep"]
        events = await progress(api, sweep["id"], timeout_s=120)
        assert events[-1]["data"]["backtestProgress"]["status"] == "SUCCEEDED"
        rankings.append(data(api, RANKING, id=sweep["id"])["backtest"]["ranking"]["runs"])
    assert rankings[0] == rankings[1]
    assert len(rankings[0]) == 10
    assert all(3 <= run["params"]["fast"] <= 20 < 21 <= run["params"]["slow"] <= 60
               for run in rankings[0])
    sharpes = [run["metrics"]["sharpe"] for run in rankings[0]]
    assert sharpes == sorted(sharpes, reverse=True)


@pytest.mark.parametrize(
    ("query", "variables", "argument"),
    [
        (SEARCH_SWEEP, {"search": {"method": "TPE"}}, "search.trials"),
        (SEARCH_SWEEP, {"search": {"method": "RANDOM", "trials": 5,
                                   "space": {"fast": {"min": 1}}}}, "search.space.fast"),
        (WALK_FORWARD, {"folds": 3, "grid": {"fast": [5]}}, "trainBars"),
        (WALK_FORWARD, {"folds": 30, "grid": {"fast": [5]}, "trainBars": 1480}, "testBars"),
    ],
)
def test_bad_research_arguments_get_an_error_naming_the_argument(
    api: UvicornServer, query: str, variables: dict[str, Any], argument: str
) -> None:
    variables = {"input": market("ETH-USDT", WALK_BARS, "ema_cross"), "rankBy": "sharpe",
                 **variables}
    body = post(api, query, **variables)
    [error] = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT", error
    assert error["extensions"]["argument"] == argument, error


CANCEL = "mutation($id: ID!) { cancelBacktest(id: $id) { id status } }"
CHILDREN = """query($id: ID!) { backtests(filter: {sweepId: $id}, limit: 100) {
  items { id kind status } } }"""


async def test_a_cancelled_walk_forward_stops_its_searches_before_their_trials(
    api: UvicornServer,
) -> None:
    search = {"method": "RANDOM", "trials": 20, "seed": 1, "batch": 2,
              "space": {"fast": {"min": 3, "max": 20}, "slow": {"min": 21, "max": 60}}}
    started = data(api, WALK_FORWARD, input=market("ETH-USDT", WALK_BARS, "ema_cross"),
                   search=search, folds=2, trainBars=500, testBars=500,
                   rankBy="sharpe")["runWalkForward"]
    assert data(api, CANCEL, id=started["id"])["cancelBacktest"]["status"] == "CANCELLED"

    def ended() -> list[dict[str, Any]] | None:
        folds = data(api, CHILDREN, id=started["id"])["backtests"]["items"]
        runs = [run for fold in folds
                for run in data(api, CHILDREN, id=fold["id"])["backtests"]["items"]]
        everything = folds + runs
        return runs if all(item["status"] in TERMINAL for item in everything) else None

    runs = wait_until(ended, timeout_s=60, what="every fold and run of the walk-forward ended")
    assert [fold["kind"] for fold in data(api, CHILDREN, id=started["id"])["backtests"][
        "items"]] == ["SWEEP", "SWEEP"]
    # The searches stopped with the cancel: of 2 x 20 trials, the first batch of each fold
    # was asked at submit (2 runs each), and a batch ending before the cancel adds 2 at most.
    assert 4 <= len(runs) <= 8
    assert data(api, RESULT, id=started["id"])["backtest"]["status"] == "CANCELLED"
