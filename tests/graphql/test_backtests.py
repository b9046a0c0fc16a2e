"""Backtests over real HTTP and websockets: queue, progress, results, cancel, sweeps, restart,
bad input. One uvicorn server with one backtest worker process serves the whole module."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
import websockets

from db.sqlite import SqliteStore
from graphql_schema.backtest_types import BacktestMetrics
from server.app import create_app
from server.settings import Settings
from strategies.registry import list_strategies
from strategies.result import BacktestResult, Metrics
from strategies.runner import run_backtest
from strategies.spec import BacktestSpec
from tests.graphql.clients import TRANSPORT_WS, post
from tests.servers import NatsServer, UvicornServer
from tests.walks import MINUTE, T0, minute_walk

BARS = 3_000
LONG_BARS = 60_000
START = datetime.fromtimestamp(T0 / 1e9, UTC).isoformat()
END = datetime.fromtimestamp((T0 + BARS * MINUTE) / 1e9, UTC).isoformat()
LONG_END = datetime.fromtimestamp((T0 + LONG_BARS * MINUTE) / 1e9, UTC).isoformat()
METRICS = """metrics { barCount totalReturn cagr annualVolatility sharpe sortino calmar maxDrawdown
  maxDrawdownDurationSeconds exposure buyAndHoldReturn tradeCount winRate profitFactor expectancy
  averageWin averageLoss bestTrade worstTrade totalFees finalEquity startingEquity
  periodsPerYear }"""
RUN = """mutation($input: BacktestInput!) { runBacktest(input: $input) { id status progress } }"""
SWEEP = """mutation($input: BacktestInput!, $grid: JSON!, $rankBy: String!) {
  runSweep(input: $input, grid: $grid, rankBy: $rankBy) { id kind status } }"""
CANCEL = "mutation($id: ID!) { cancelBacktest(id: $id) { id status startedAt finishedAt } }"
PROGRESS = "subscription($id: ID!) { backtestProgress(id: $id) { status progress error } }"


def ema_input(**changes: Any) -> dict[str, Any]:
    return {
        "exchange": "sim", "symbol": "BTC-USDT", "timeframe": "1m", "strategy": "ema_cross",
        "start": START, "end": END, "params": {"fast": 5, "slow": 20}, **changes,
    }


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory, nats_server: NatsServer) -> Settings:
    return Settings(
        data_dir=tmp_path_factory.mktemp("backtest-api"), nats_url=nats_server.url,
        timeframes=("1s", "1m"), backtest_workers=1, sweep_max_runs=6,
    )


@pytest.fixture(scope="module")
def api(settings: Settings) -> Iterator[UvicornServer]:
    store = SqliteStore(settings.store_path)
    store.upsert_candles(minute_walk(BARS))
    store.upsert_candles(minute_walk(LONG_BARS, symbol="ETH-USDT", seed=11))
    store.close()
    server = UvicornServer(create_app(settings))
    yield server
    server.stop()


def data(api: UvicornServer, query: str, **variables: Any) -> dict[str, Any]:
    body = post(api, query, **variables)
    assert "errors" not in body, body["errors"]
    return body["data"]


async def progress(api: UvicornServer, id: str, *, timeout_s: float = 60) -> list[dict[str, Any]]:
    """Every backtestProgress event until the server completes the subscription."""
    events: list[dict[str, Any]] = []
    async with websockets.connect(
        f"{api.ws_url}/graphql", subprotocols=[TRANSPORT_WS], open_timeout=timeout_s
    ) as ws:
        await ws.send(json.dumps({"type": "connection_init"}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        await ws.send(json.dumps({"id": "1", "type": "subscribe",
                                  "payload": {"query": PROGRESS, "variables": {"id": id}}}))
        while True:
            message = json.loads(await _recv(ws, timeout_s))
            if message["type"] == "complete":
                return events
            assert message["type"] == "next", message
            events.append(message["payload"])


async def _recv(ws: websockets.ClientConnection, timeout_s: float) -> str | bytes:
    async with asyncio.timeout(timeout_s):
        return await ws.recv()


def direct_run(settings: Settings, spec: dict[str, Any], start_ns: int, end_ns: int
               ) -> BacktestResult:
    """The same backtest run in this process, on the same stored candles."""
    parsed = msgspec.convert(spec, BacktestSpec)
    store = SqliteStore(settings.store_path)
    try:
        frame = store.candles_frame(parsed.exchange, parsed.symbol, parsed.timeframe,
                                    start_ns, end_ns)
    finally:
        store.close()
    return run_backtest(frame, parsed)


def as_graphql_metrics(result: BacktestResult) -> dict[str, Any]:
    camel = {}
    for name, value in msgspec.to_builtins(result.metrics).items():
        if name == "max_drawdown_duration_ns":
            name, value = "max_drawdown_duration_seconds", value / 1e9
        head, *rest = name.split("_")
        camel[head + "".join(part.title() for part in rest)] = value
    return camel


def iso_ms(ts_ns: int) -> str:
    return datetime.fromtimestamp(ts_ns / 1e9, UTC).isoformat()


# Results ---------------------------------------------------------------------------------------
async def test_backtest_queues_streams_progress_and_stores_the_metrics_of_a_direct_run(
    api: UvicornServer, settings: Settings
) -> None:
    queued = data(api, RUN, input=ema_input(takerFee=0.002, sizing={"fraction": 0.5}))
    events = await progress(api, queued["runBacktest"]["id"])
    body = data(api, f"""query($id: ID!) {{ backtest(id: $id) {{
        id kind status progress error start end createdAt startedAt finishedAt spec params
        {METRICS} trades(limit: 1000) {{ positionId side entryTime exitTime entryPrice exitPrice
        quantity pnl fees netReturn }} equity {{ ts equity position }} }} }}""",
        id=queued["runBacktest"]["id"])["backtest"]
    direct = direct_run(settings, body["spec"], T0, T0 + BARS * MINUTE)

    assert queued["runBacktest"]["status"] == "QUEUED"
    assert queued["runBacktest"]["progress"] == 0
    statuses = [event["data"]["backtestProgress"]["status"] for event in events]
    assert statuses[-1] == "SUCCEEDED" and "RUNNING" in statuses
    assert set(statuses) <= {"QUEUED", "RUNNING", "SUCCEEDED"}
    fractions = [event["data"]["backtestProgress"]["progress"] for event in events]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert (body["kind"], body["status"], body["progress"], body["error"]) == (
        "BACKTEST", "SUCCEEDED", 1.0, None)
    assert body["spec"]["taker_fee"] == 0.002
    assert body["spec"]["sizing"] == {"type": "fraction", "fraction": 0.5}
    assert body["params"] == {"fast": 5, "slow": 20}
    assert (body["start"], body["end"]) == (START, END)
    assert body["createdAt"] <= body["startedAt"] <= body["finishedAt"]
    assert body["metrics"] == as_graphql_metrics(direct)
    assert direct.metrics.trade_count > 10
    assert [trade["positionId"] for trade in body["trades"]] == [
        trade.position_id for trade in direct.trades]
    assert [(t["side"], t["entryTime"], t["exitTime"], t["entryPrice"], t["exitPrice"],
             t["quantity"], t["pnl"], t["fees"], t["netReturn"]) for t in body["trades"]] == [
        (t.side, iso_ms(t.entry_ts), iso_ms(t.exit_ts), t.entry_price, t.exit_price,
         t.quantity, t.pnl, t.fees, t.net_return) for t in direct.trades]
    assert body["equity"]["ts"] == [ts / 1e6 for ts in direct.equity.ts]
    assert body["equity"]["equity"] == direct.equity.equity
    assert body["equity"]["position"] == direct.equity.position


def test_trades_are_paged_by_offset_and_limit(api: UvicornServer) -> None:
    page = """query($id: ID!, $offset: Int!, $limit: Int!) { backtest(id: $id) {
        trades(offset: $offset, limit: $limit) { positionId } } }"""
    listed = data(api, """{ backtests(filter: {status: SUCCEEDED, kind: BACKTEST}, limit: 1) {
        items { id metrics { tradeCount } } } }""")["backtests"]["items"][0]
    count = listed["metrics"]["tradeCount"]
    every = data(api, page, id=listed["id"], offset=0, limit=1000)["backtest"]["trades"]
    pages = [data(api, page, id=listed["id"], offset=offset, limit=7)["backtest"]["trades"]
             for offset in range(0, count + 7, 7)]

    assert len(every) == count
    assert [trade for each in pages for trade in each] == every
    assert pages[-1] == []


# Cancelling ------------------------------------------------------------------------------------
async def test_a_queued_backtest_cancelled_never_runs(api: UvicornServer) -> None:
    # One worker: a long backtest holds it while the next one waits in the queue.
    blocker = data(api, RUN, input=ema_input(symbol="ETH-USDT", end=LONG_END,
                                             params={"fast": 50, "slow": 200}))["runBacktest"]
    waiting = data(api, RUN, input=ema_input())["runBacktest"]
    cancelled = data(api, CANCEL, id=waiting["id"])["cancelBacktest"]
    stopped = data(api, CANCEL, id=blocker["id"])["cancelBacktest"]
    after = data(api, RUN, input=ema_input())["runBacktest"]
    events = await progress(api, after["id"])
    again = data(api, CANCEL, id=waiting["id"])["cancelBacktest"]
    trades = data(api, "query($id: ID!) { backtest(id: $id) { trades { pnl } equity { ts } } }",
                  id=waiting["id"])["backtest"]

    assert waiting["status"] == "QUEUED"
    assert cancelled["status"] == "CANCELLED"
    assert cancelled["startedAt"] is None and cancelled["finishedAt"] is not None
    assert stopped["status"] == "CANCELLED"
    assert events[-1]["data"]["backtestProgress"]["status"] == "SUCCEEDED"
    assert again == cancelled  # cancelling a finished one changes nothing
    assert trades == {"trades": [], "equity": None}


async def test_progress_of_a_finished_backtest_is_its_final_state(api: UvicornServer) -> None:
    done = data(api, "{ backtests(filter: {status: SUCCEEDED}, limit: 1) { items { id } } }")
    events = await progress(api, done["backtests"]["items"][0]["id"])

    assert [event["data"]["backtestProgress"] for event in events] == [
        {"status": "SUCCEEDED", "progress": 1.0, "error": None}]


# Sweeps ----------------------------------------------------------------------------------------
async def test_sweep_ranks_its_runs_streams_progress_and_lists_them(
    api: UvicornServer, settings: Settings
) -> None:
    grid = {"fast": [3, 5, 8, 25], "slow": [20]}
    sweep = data(api, SWEEP, input=ema_input(params={}), grid=grid,
                 rankBy="total_return")["runSweep"]
    events = await progress(api, sweep["id"])
    body = data(api, f"""query($id: ID!) {{ backtest(id: $id) {{ kind status progress spec
        metrics {{ totalReturn }} equity {{ ts }}
        ranking {{ rankBy runs {{ rank id params {METRICS} }}
        unfinished {{ id }} skipped {{ params reason }} }} }} }}""", id=sweep["id"])["backtest"]
    runs = data(api, """query($id: ID!) { backtests(filter: {sweepId: $id}) {
        items { id kind sweepId status params equity { ts } } } }""", id=sweep["id"])
    top = data(api, "{ backtests(limit: 100) { items { id sweepId } } }")["backtests"]["items"]

    assert (sweep["kind"], sweep["status"]) == ("SWEEP", "QUEUED")
    fractions = [event["data"]["backtestProgress"]["progress"] for event in events]
    assert fractions == sorted(fractions) and len(set(fractions)) >= 3
    assert events[-1]["data"]["backtestProgress"]["status"] == "SUCCEEDED"
    assert (body["kind"], body["status"], body["progress"]) == ("SWEEP", "SUCCEEDED", 1.0)
    assert body["metrics"] is None and body["equity"] is None
    assert body["spec"]["grid"] == grid and body["spec"]["rank_by"] == "total_return"
    ranking = body["ranking"]
    returns = [run["metrics"]["totalReturn"] for run in ranking["runs"]]
    assert returns == sorted(returns, reverse=True)
    assert [run["rank"] for run in ranking["runs"]] == [1, 2, 3]
    assert sorted(run["params"]["fast"] for run in ranking["runs"]) == [3, 5, 8]
    assert ranking["unfinished"] == []
    assert [skipped["params"] for skipped in ranking["skipped"]] == [{"fast": 25, "slow": 20}]
    assert "expected < slow (20), got 25" in ranking["skipped"][0]["reason"]
    best = ranking["runs"][0]
    spec = {**{k: v for k, v in body["spec"].items() if k not in ("grid", "rank_by")},
            "params": best["params"]}
    direct = direct_run(settings, spec, T0, T0 + BARS * MINUTE)
    assert best["metrics"] == as_graphql_metrics(direct)
    items = runs["backtests"]["items"]
    assert sorted(item["id"] for item in items) == sorted(run["id"] for run in ranking["runs"])
    assert all(item["kind"] == "BACKTEST" and item["sweepId"] == sweep["id"] for item in items)
    assert all(item["status"] == "SUCCEEDED" and item["equity"] is None for item in items)
    assert sweep["id"] in {item["id"] for item in top}
    assert all(item["sweepId"] is None for item in top)


async def test_cancelling_a_sweep_cancels_its_unfinished_runs(api: UvicornServer) -> None:
    sweep = data(api, SWEEP, input=ema_input(symbol="ETH-USDT", end=LONG_END, params={}),
                 grid={"fast": [40, 50, 60], "slow": [200]}, rankBy="sharpe")["runSweep"]
    cancelled = data(api, CANCEL, id=sweep["id"])["cancelBacktest"]
    runs = data(api, """query($id: ID!) { backtests(filter: {sweepId: $id}) {
        items { status } } }""", id=sweep["id"])["backtests"]["items"]
    ranking = data(api, """query($id: ID!) { backtest(id: $id) { ranking {
        runs { id } unfinished { status } } } }""", id=sweep["id"])["backtest"]["ranking"]

    assert cancelled["status"] == "CANCELLED"
    assert [run["status"] for run in runs] == ["CANCELLED"] * 3
    assert ranking == {"runs": [], "unfinished": [{"status": "CANCELLED"}] * 3}


# Listing and restarts --------------------------------------------------------------------------
def test_backtests_pages_newest_first_without_overlap(api: UvicornServer) -> None:
    query = """query($cursor: String) { backtests(limit: 2, cursor: $cursor,
        filter: {includeSweepRuns: true}) { items { id createdAt } nextCursor } }"""
    everything = data(api, "{ backtests(limit: 100, filter: {includeSweepRuns: true}) "
                           "{ items { id createdAt } nextCursor } }")["backtests"]
    pages, cursor = [], None
    while True:
        page = data(api, query, cursor=cursor)["backtests"]
        pages.append(page["items"])
        cursor = page["nextCursor"]
        if cursor is None:
            break

    assert everything["nextCursor"] is None
    assert [item for page in pages for item in page] == everything["items"]
    created = [item["createdAt"] for item in everything["items"]]
    assert created == sorted(created, reverse=True)
    assert all(len(page) == 2 for page in pages[:-1])


def test_a_new_server_over_the_same_store_serves_finished_backtests(
    api: UvicornServer, settings: Settings
) -> None:
    query = f"""{{ backtests(filter: {{kind: BACKTEST, status: SUCCEEDED}}, limit: 1) {{
        items {{ id status {METRICS} trades(limit: 1000) {{ pnl }} equity {{ ts equity }} }}
    }} }}"""
    before = data(api, query)
    restarted = UvicornServer(create_app(settings))
    try:
        after = data(restarted, query)
    finally:
        restarted.stop()

    assert after == before
    assert before["backtests"]["items"][0]["equity"]["ts"]


# Strategies and bad input ----------------------------------------------------------------------
def test_strategies_lists_every_strategy_with_its_parameter_schema(api: UvicornServer) -> None:
    strategies = data(api, """{ strategies { name summary parameters {
        name type default minimum maximum description } } }""")["strategies"]

    assert [s["name"] for s in strategies] == [info.name for info in list_strategies()]
    ema = next(s for s in strategies if s["name"] == "ema_cross")
    registry = next(info for info in list_strategies() if info.name == "ema_cross")
    assert ema["parameters"] == [
        {"name": p.name, "type": p.type.upper(), "default": p.default, "minimum": p.minimum,
         "maximum": p.maximum, "description": p.description}
        for p in registry.parameters
    ]


@pytest.mark.parametrize(
    ("changes", "argument", "message"),
    [
        ({"strategy": "moon"}, "input.strategy",
         "unknown strategy 'moon'; valid strategies: bollinger_breakout, donchian_breakout"),
        ({"params": {"fast": 0}}, "input.params.fast", "expected int in [2"),
        ({"params": {"fast": "5"}}, "input.params.fast", "expected int, got '5'"),
        ({"params": {"fast": 30, "slow": 20}}, "input.params.fast", "expected < slow (20)"),
        ({"params": {"speed": 3}}, "input.params.speed", "expected one of the parameters fast"),
        ({"params": [5]}, "input.params", "expected an object"),
        ({"end": START}, "input.end", "expected a time after start"),
        ({"symbol": "SOL-USDT"}, "input", "no 1m candles of sim SOL-USDT are stored from"),
        ({"timeframe": "5m"}, "input.timeframe", "expected one of 1s, 1m, got '5m'"),
        ({"makerFee": 0.5}, "input.makerFee", "expected a number in [-0.01, 0.1], got 0.5"),
        ({"sizing": {"fraction": 1.5}}, "input.sizing.fraction", "expected a fraction in (0, 1]"),
        ({"symbol": "btc"}, "input.symbol", "expected canonical BASE-QUOTE"),
    ],
)
def test_a_bad_backtest_input_is_refused_naming_the_argument(
    api: UvicornServer, changes: dict[str, Any], argument: str, message: str
) -> None:
    body = post(api, RUN, input=ema_input(**changes))

    assert body["data"] is None
    [error] = body["errors"]
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "argument": argument}
    assert message in error["message"]


@pytest.mark.parametrize(
    ("grid", "rank_by", "argument", "message"),
    [
        ({"fast": [3, 5]}, "luck", "rankBy", "expected one of total_return, cagr, sharpe"),
        ({"fast": list(range(2, 9))}, "sharpe", "grid", "expected at most 6 combinations, got 7"),
        ({"fast": []}, "sharpe", "grid.fast", "expected a non-empty list of values"),
        ({"fast": 5}, "sharpe", "grid.fast", "expected a non-empty list of values, got 5"),
        ({}, "sharpe", "grid", "expected an object mapping parameter names to lists"),
        ({"fast": [3, 1]}, "sharpe", "grid.fast", "expected int in [2"),
        ({"fast": [30, 40]}, "sharpe", "grid", "the strategy refuses every combination"),
    ],
)
def test_a_bad_sweep_is_refused_naming_the_argument(
    api: UvicornServer, grid: dict[str, Any], rank_by: str, argument: str, message: str
) -> None:
    body = post(api, SWEEP, input=ema_input(params={}), grid=grid, rankBy=rank_by)

    [error] = body["errors"]
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "argument": argument}
    assert message in error["message"]


async def test_an_unknown_id_is_not_found_everywhere(api: UvicornServer) -> None:
    query = post(api, "{ backtest(id: \"nope\") { id } }")
    cancel = post(api, CANCEL, id="nope")
    async with websockets.connect(
        f"{api.ws_url}/graphql", subprotocols=[TRANSPORT_WS]
    ) as ws:
        await ws.send(json.dumps({"type": "connection_init"}))
        await ws.recv()
        await ws.send(json.dumps({"id": "1", "type": "subscribe",
                                  "payload": {"query": PROGRESS, "variables": {"id": "nope"}}}))
        message = json.loads(await _recv(ws, 10))

    assert message["type"] == "next" and message["payload"]["data"] is None
    for errors in (query["errors"], cancel["errors"], message["payload"]["errors"]):
        assert [(e["message"], e["extensions"]["code"]) for e in errors] == [
            ("no backtest or sweep with id 'nope'", "NOT_FOUND")]


def test_the_metrics_type_has_every_metric_the_runner_computes() -> None:
    graphql = set(BacktestMetrics.__annotations__)
    runner = {f.name for f in msgspec.structs.fields(Metrics)}

    assert graphql == runner - {"max_drawdown_duration_ns"} | {"max_drawdown_duration_seconds"}
