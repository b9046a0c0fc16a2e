"""Indicator queries over real HTTP: stored ones, and any pandas-ta indicator on demand."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest

from db.indicator_store import IndicatorPoint
from db.sqlite import SqliteStore
from market.messages import Candle
from server.app import create_app
from server.settings import Settings
from tests.graphql.clients import post
from tests.graphql.market_data import MINUTE, T0, aggregate, iso, walk
from tests.servers import NatsServer, UvicornServer

with warnings.catch_warnings():
    # pandas-ta 0.4 uses pandas APIs that pandas 3 deprecates.
    warnings.simplefilter("ignore", DeprecationWarning)
    import pandas_ta

BTC = walk("sim", "BTC-USDT", 1200, seed=11)
MARKET = 'exchange: "sim", symbol: "BTC-USDT"'
STORED = ["macd_12_26_9.hist", "sma_3"]


def stored_points() -> list[IndicatorPoint]:
    points = []
    for i, candle in enumerate(BTC):
        if i >= 2:
            sma = sum(c.close for c in BTC[i - 2:i + 1]) / 3
            points.append(IndicatorPoint("sim", "BTC-USDT", "1m", candle.ts, "sma_3", sma))
        if i % 2 == 0:
            points.append(IndicatorPoint("sim", "BTC-USDT", "1m", candle.ts, "macd_12_26_9.hist",
                                         i / 10))
    return points


@pytest.fixture(scope="module")
def api(
    tmp_path_factory: pytest.TempPathFactory, nats_server: NatsServer
) -> Iterator[UvicornServer]:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("indicator-queries"), nats_url=nats_server.url,
        timeframes=("1m", "5m"), max_candles=500,
    )
    store = SqliteStore(settings.store_path)
    store.upsert_candles(BTC)
    store.upsert_candles(aggregate(BTC, "5m"))
    store.upsert_indicators(stored_points())
    store.close()
    server = UvicornServer(create_app(settings))
    yield server
    server.stop()


def frame(candles: list[Candle]) -> pd.DataFrame:
    index = pd.DatetimeIndex([pd.Timestamp(c.ts, tz="UTC") for c in candles])
    return pd.DataFrame(
        {name: [getattr(c, name) for c in candles]
         for name in ("open", "high", "low", "close", "volume")},
        index=index,
    )


def nulls(values: Any) -> list[float | None]:
    return [None if v is None or not math.isfinite(v) else float(v) for v in values]


def indicator(api: UvicornServer, arguments: str, **variables: Any) -> dict[str, Any]:
    return post(
        api,
        "query($params: JSON) { indicator(" + MARKET + f", {arguments}, params: $params) "
        "{ exchange symbol timeframe ts series { name values } } }",
        **variables,
    )


def error_of(body: dict[str, Any]) -> dict[str, Any]:
    [error] = body["errors"]
    assert body["data"] is None
    return error


def test_an_indicator_on_demand_equals_pandas_ta_over_the_same_candles(
    api: UvicornServer,
) -> None:
    # 100 candles after 200 others: the warm-up (300) reaches back to the first stored candle,
    # so the values equal pandas-ta's over the whole history, recursive indicators included.
    start, end = iso(T0 + 200 * MINUTE), iso(T0 + 300 * MINUTE)
    history = frame(BTC[:300])
    expected = {
        "sma": pandas_ta.sma(history.close, length=20).to_frame(),
        "macd": pandas_ta.macd(history.close, fast=8),
        "bbands": pandas_ta.bbands(history.close, length=20, lower_std=2.5),
        "atr": pandas_ta.atr(history.high, history.low, history.close).to_frame(),
    }
    params = {"sma": {"length": 20}, "macd": {"fast": 8}, "bbands": {"length": 20,
              "lower_std": 2.5}, "atr": None}
    for name, want in expected.items():
        body = indicator(api, f'timeframe: "1m", name: "{name}", start: "{start}", end: "{end}"',
                         params=params[name])
        assert "errors" not in body, body["errors"]
        got = body["data"]["indicator"]
        assert got["ts"] == [c.ts / 1e6 for c in BTC[200:300]]
        assert [s["name"] for s in got["series"]] == list(want.columns)
        for series in got["series"]:
            assert series["values"] == nulls(want[series["name"]].iloc[200:]), series["name"]


def test_multi_output_indicators_return_named_series(api: UvicornServer) -> None:
    body = indicator(api, 'timeframe: "1m", name: "macd", limit: 5')
    names = [s["name"] for s in body["data"]["indicator"]["series"]]
    assert names == ["MACD_12_26_9", "MACDh_12_26_9", "MACDs_12_26_9"]
    body = indicator(api, 'timeframe: "1m", name: "bbands", limit: 5', params={"length": 10})
    assert [s["name"][:4] for s in body["data"]["indicator"]["series"]] == [
        "BBL_", "BBM_", "BBU_", "BBB_", "BBP_"
    ]


def test_an_indicator_over_a_resampled_timeframe_uses_the_resampled_candles(
    api: UvicornServer,
) -> None:
    candles = aggregate(aggregate(BTC, "5m"), "15m")
    body = indicator(api, 'timeframe: "15m", name: "rsi", limit: 30', params={"length": 5})
    got = body["data"]["indicator"]
    assert got["ts"] == [c.ts / 1e6 for c in candles[-30:]]
    want = pandas_ta.rsi(frame(candles).close, length=5)
    assert got["series"][0]["values"] == pytest.approx(nulls(want.iloc[-30:]), rel=1e-9)


def test_warm_up_values_without_a_number_are_null(api: UvicornServer) -> None:
    body = indicator(api, f'timeframe: "1m", name: "sma", end: "{iso(T0 + 5 * MINUTE)}"',
                     params={"length": 3})
    assert body["data"]["indicator"]["series"][0]["values"][:3] == [None, None, pytest.approx(
        sum(c.close for c in BTC[:3]) / 3, rel=1e-12)]


def test_a_wrong_indicator_name_lists_the_valid_ones(api: UvicornServer) -> None:
    error = error_of(indicator(api, 'timeframe: "1m", name: "smaa"'))
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "argument": "name"}
    assert "unknown pandas-ta indicator 'smaa'" in error["message"]
    assert ", macd, " in error["message"] and ", sma, " in error["message"]


@pytest.mark.parametrize(
    ("params", "argument", "words"),
    [
        ({"lenght": 20}, "params.lenght", "sma has no parameter 'lenght'; its parameters: length"),
        ({"length": "20"}, "params.length", "expected an integer"),
        ({"length": 2.5}, "params.length", "expected an integer"),
        ({"length": True}, "params.length", "got a boolean"),
        ({"length": 10**9}, "params.length", "within"),
        ({"talib": 1}, "params.talib", "expected true or false"),
        ([20], "params", "expected an object of parameters"),
    ],
)
def test_bad_params_are_bad_user_input_naming_the_parameter(
    api: UvicornServer, params: Any, argument: str, words: str
) -> None:
    error = error_of(indicator(api, 'timeframe: "1m", name: "sma"', params=params))
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "argument": argument}
    assert words in error["message"]


def test_an_indicator_on_an_unknown_market_is_not_found(api: UvicornServer) -> None:
    body = post(api, '{ indicator(exchange: "sim", symbol: "NOPE-USDT", timeframe: "1m", '
                     'name: "sma") { ts } }')
    assert error_of(body)["extensions"] == {"code": "NOT_FOUND"}


def test_stored_indicators_come_as_named_series_on_one_time_axis(api: UvicornServer) -> None:
    body = post(api, "{ indicators(" + MARKET + ', timeframe: "1m", limit: 4) '
                     "{ timeframe ts series { name values } } }")
    got = body["data"]["indicators"]
    last = BTC[-4:]
    assert got["ts"] == [c.ts / 1e6 for c in last]
    assert [s["name"] for s in got["series"]] == STORED
    hist, sma = (s["values"] for s in got["series"])
    assert hist == [(1196 + i) / 10 if i % 2 == 0 else None for i in range(4)]
    assert sma == pytest.approx(
        [sum(c.close for c in BTC[i - 2:i + 1]) / 3 for i in range(1196, 1200)], rel=1e-15
    )


def test_stored_indicators_by_name_and_range(api: UvicornServer) -> None:
    body = post(api, "{ indicators(" + MARKET + ', timeframe: "1m", names: ["sma_3"], '
                     f'start: "{iso(T0)}", end: "{iso(T0 + 5 * MINUTE)}") '
                     "{ ts series { name values } } }")
    got = body["data"]["indicators"]
    # sma_3 is stored from the third candle on: the time axis holds the times with values.
    assert got["ts"] == [c.ts / 1e6 for c in BTC[2:5]]
    assert got["series"][0]["name"] == "sma_3"
    assert got["series"][0]["values"] == pytest.approx(
        [sum(c.close for c in BTC[i - 2:i + 1]) / 3 for i in range(2, 5)], rel=1e-15
    )


@pytest.mark.parametrize(
    ("names", "words"),
    [
        (["rsi_14"], "no stored indicator 'rsi_14' for sim:BTC-USDT 1m; stored: "
                     "macd_12_26_9.hist, sma_3"),
        (["SMA 3"], "expected stored indicator names"),
        ([], "expected 1 to 50 names"),
        (["sma_3", "sma_3"], "repeated"),
    ],
)
def test_a_bad_stored_indicator_name_is_bad_user_input(
    api: UvicornServer, names: list[str], words: str
) -> None:
    body = post(api, "query($names: [String!]) { indicators(" + MARKET +
                ', timeframe: "1m", names: $names) { ts } }', names=names)
    error = error_of(body)
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "argument": "names"}
    assert words in error["message"]
