"""Candle queries over real HTTP: paging, caps, resampling, series, symbols, latest candles."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgspec
import pytest

from db.sqlite import SqliteStore
from market.messages import Candle
from server.app import create_app
from server.settings import Settings
from tests.graphql.clients import post
from tests.graphql.market_data import MINUTE, T0, aggregate, iso, walk
from tests.servers import NatsServer, UvicornServer

BTC = walk("sim", "BTC-USDT", 1200, seed=1)
ETH = walk("sim", "ETH-USDT", 10, seed=2)
# As an exchange's candle history gives them: no trade count, no VWAP.
BINANCE = [
    msgspec.structs.replace(c, trades=None, vwap=None)
    for c in walk("binance", "BTC-USDT", 5, seed=3, start_ns=T0 + 3 * MINUTE)
]
FIELDS = "ts open high low close volume trades vwap closed"
MARKET = 'exchange: "sim", symbol: "BTC-USDT"'


@pytest.fixture(scope="module")
def api(
    tmp_path_factory: pytest.TempPathFactory, nats_server: NatsServer
) -> Iterator[UvicornServer]:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("candle-queries"), nats_url=nats_server.url,
        timeframes=("1m", "5m"), max_candles=500,
    )
    store = SqliteStore(settings.store_path)
    for candles in (BTC, ETH, BINANCE):
        store.upsert_candles(candles)
        store.upsert_candles(aggregate(candles, "5m"))
    store.close()
    server = UvicornServer(create_app(settings))
    yield server
    server.stop()


def as_json(candle: Candle) -> dict[str, Any]:
    return {
        "ts": iso(candle.ts), "open": candle.open, "high": candle.high, "low": candle.low,
        "close": candle.close, "volume": candle.volume, "trades": candle.trades,
        "vwap": candle.vwap, "closed": candle.closed,
    }


def page(api: UvicornServer, arguments: str, **variables: Any) -> dict[str, Any]:
    body = post(
        api,
        "query($after: String, $before: String) { candlesPage("
        f"{arguments}, after: $after, before: $before) {{ nodes {{ {FIELDS} }} pageInfo {{ "
        "startCursor endCursor hasPreviousPage hasNextPage } } }",
        **variables,
    )
    assert "errors" not in body, body["errors"]
    return body["data"]["candlesPage"]


def error_of(body: dict[str, Any]) -> dict[str, Any]:
    [error] = body["errors"]
    return error


def test_paging_backwards_from_the_newest_covers_the_range_without_gap_or_overlap(
    api: UvicornServer,
) -> None:
    arguments = f'{MARKET}, timeframe: "1m", limit: 170'
    pages = [page(api, arguments)]
    while pages[-1]["pageInfo"]["hasPreviousPage"]:
        pages.append(page(api, arguments, before=pages[-1]["pageInfo"]["startCursor"]))
    nodes = [node for p in reversed(pages) for node in p["nodes"]]
    assert nodes == [as_json(c) for c in BTC]
    assert [len(p["nodes"]) for p in pages] == [170] * 7 + [10]
    assert pages[0]["pageInfo"]["hasNextPage"] is False
    assert all(p["pageInfo"]["hasNextPage"] for p in pages[1:])


def test_paging_forwards_from_the_start_covers_the_range_without_gap_or_overlap(
    api: UvicornServer,
) -> None:
    start, end = iso(T0 + 100 * MINUTE), iso(T0 + 1000 * MINUTE)
    arguments = f'{MARKET}, timeframe: "1m", limit: 250, start: "{start}", end: "{end}"'
    pages = [page(api, f"{arguments}, fromStart: true")]
    while pages[-1]["pageInfo"]["hasNextPage"]:
        pages.append(page(api, arguments, after=pages[-1]["pageInfo"]["endCursor"]))
    nodes = [node for p in pages for node in p["nodes"]]
    assert nodes == [as_json(c) for c in BTC[100:1000]]
    assert [len(p["nodes"]) for p in pages] == [250, 250, 250, 150]
    assert pages[0]["pageInfo"]["hasPreviousPage"] is False
    assert all(p["pageInfo"]["hasPreviousPage"] for p in pages[1:])


def test_cursors_from_candles_page_work_on_candles_and_candle_series(api: UvicornServer) -> None:
    cursor = page(api, f'{MARKET}, timeframe: "1m", limit: 3')["pageInfo"]["startCursor"]
    body = post(
        api,
        "query($c: String) { candles(" + MARKET + ', timeframe: "1m", limit: 2, before: $c) '
        "{ close } candleSeries(" + MARKET + ', timeframe: "1m", limit: 2, before: $c) '
        "{ close pageInfo { hasPreviousPage hasNextPage } } }",
        c=cursor,
    )
    assert body["data"]["candles"] == [{"close": c.close} for c in BTC[-5:-3]]
    assert body["data"]["candleSeries"] == {
        "close": [c.close for c in BTC[-5:-3]],
        "pageInfo": {"hasPreviousPage": True, "hasNextPage": True},
    }


def test_limit_defaults_to_the_cap_when_the_cap_is_lower(api: UvicornServer) -> None:
    body = post(api, "{ candles(" + MARKET + ', timeframe: "1m") { close } }')
    assert body["data"]["candles"] == [{"close": c.close} for c in BTC[-500:]]


@pytest.mark.parametrize(
    ("arguments", "argument", "words"),
    [
        ('timeframe: "1m", limit: 501', "limit", "expected 1 to 500"),
        ('timeframe: "1m", after: "x", before: "y"', "before", "not both"),
        ('timeframe: "1m", after: "bm90LWEtY3Vyc29y"', "after", "expected a cursor"),
        ('timeframe: "1m", before: "!!"', "before", "expected a cursor"),
        ('timeframe: "1m", fromStart: true, before: "Y2FuZGxlOjE="', "fromStart", "direction"),
        ('timeframe: "1m", start: "2023-11-15T00:00:00Z", end: "2023-11-15T00:00:00Z"', "end",
         "after start"),
        ('timeframe: "90s"', "timeframe", "not a whole number of any stored timeframe (1m, 5m)"),
        ('timeframe: "2x"', "timeframe", "stored timeframe (1m, 5m)"),
    ],
)
@pytest.mark.parametrize("field", ["candles", "candlesPage", "candleSeries"])
def test_a_bad_argument_is_bad_user_input_naming_it(
    api: UvicornServer, field: str, arguments: str, argument: str, words: str
) -> None:
    selection = "{ nodes { ts } }" if field == "candlesPage" else "{ ts }"
    body = post(api, f"{{ {field}({MARKET}, {arguments}) {selection} }}")
    error = error_of(body)
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "argument": argument}
    assert words in error["message"]
    assert body["data"] is None


@pytest.mark.parametrize(("timeframe", "source"), [("3m", "1m"), ("15m", "5m"), ("2h", "5m")])
def test_a_timeframe_that_is_not_stored_is_resampled_from_the_widest_stored_divisor(
    api: UvicornServer, timeframe: str, source: str
) -> None:
    stored = BTC if source == "1m" else aggregate(BTC, "5m")
    expected = aggregate(stored, timeframe)[-40:]
    body = post(api, "{ candles(" + MARKET + f', timeframe: "{timeframe}", limit: 40) '
                f"{{ timeframe {FIELDS} }} }}")
    rows = body["data"]["candles"]
    assert [r.pop("timeframe") for r in rows] == [timeframe] * len(expected)
    assert [r["ts"] for r in rows] == [iso(c.ts) for c in expected]
    for row, candle in zip(rows, expected, strict=True):
        assert row == {**as_json(candle), "vwap": pytest.approx(candle.vwap, rel=1e-12),
                       "volume": pytest.approx(candle.volume, rel=1e-12)}


def test_resampled_candles_page_backwards_without_gap_or_overlap(api: UvicornServer) -> None:
    arguments = f'{MARKET}, timeframe: "25m", limit: 7'
    pages = [page(api, arguments)]
    while pages[-1]["pageInfo"]["hasPreviousPage"]:
        pages.append(page(api, arguments, before=pages[-1]["pageInfo"]["startCursor"]))
    ts = [node["ts"] for p in reversed(pages) for node in p["nodes"]]
    assert ts == [iso(c.ts) for c in aggregate(aggregate(BTC, "5m"), "25m")]


def test_candle_series_holds_the_same_numbers_as_candle_objects(api: UvicornServer) -> None:
    for timeframe in ("1m", "10m"):
        arguments = f'{MARKET}, timeframe: "{timeframe}", limit: 300'
        body = post(api, f"{{ candles({arguments}) {{ {FIELDS} }} "
                         f"candleSeries({arguments}) {{ exchange symbol timeframe "
                         "ts open high low close volume trades vwap } }")
        objects, series = body["data"]["candles"], body["data"]["candleSeries"]
        assert len(objects) == (300 if timeframe == "1m" else 121)
        assert series["exchange"] == "sim" and series["timeframe"] == timeframe
        assert [iso(int(ms) * 1_000_000) for ms in series["ts"]] == [o["ts"] for o in objects]
        for name in ("open", "high", "low", "close", "volume", "trades", "vwap"):
            assert series[name] == [o[name] for o in objects], name


def test_candles_without_trade_count_or_vwap_answer_null_for_both(api: UvicornServer) -> None:
    market = 'exchange: "binance", symbol: "BTC-USDT"'
    for timeframe, expected in (("1m", BINANCE), ("10m", aggregate(BINANCE, "10m"))):
        arguments = f'{market}, timeframe: "{timeframe}"'
        body = post(api, f"{{ candles({arguments}) {{ {FIELDS} }} "
                         f"candleSeries({arguments}) {{ close trades vwap }} }}")
        assert "errors" not in body, body["errors"]
        assert body["data"]["candles"] == [as_json(c) for c in expected]
        assert body["data"]["candleSeries"] == {
            "close": [c.close for c in expected],
            "trades": [None] * len(expected), "vwap": [None] * len(expected),
        }


def test_candle_series_reads_what_is_selected_through_fragments_and_aliases(
    api: UvicornServer,
) -> None:
    for timeframe in ("1m", "10m"):  # stored, and resampled
        arguments = f'{MARKET}, timeframe: "{timeframe}", limit: 50'
        whole = post(api, f"{{ candleSeries({arguments}) {{ ts close volume trades }} }}")
        some = post(api, f"{{ candleSeries({arguments}) {{ ts c: close ...v }} }} "
                         "fragment v on CandleSeries { ... on CandleSeries { trades } }")
        expected = whole["data"]["candleSeries"]
        assert some["data"]["candleSeries"] == {
            "ts": expected["ts"], "c": expected["close"], "trades": expected["trades"]
        }
        assert len(expected["ts"]) == 50


def test_candle_series_ts_is_epoch_milliseconds(api: UvicornServer) -> None:
    body = post(api, "{ candleSeries(" + MARKET + ', timeframe: "1m", limit: 2) { ts } }')
    assert body["data"]["candleSeries"]["ts"] == [c.ts / 1e6 for c in BTC[-2:]]


def test_symbols_give_first_and_last_candle_and_last_price(api: UvicornServer) -> None:
    body = post(api, "{ symbols { exchange symbol firstTs lastTs lastPrice } }")
    assert body["data"]["symbols"] == [
        {"exchange": market[0].exchange, "symbol": market[0].symbol,
         "firstTs": iso(aggregate(market, "5m")[0].ts), "lastTs": iso(market[-1].ts),
         "lastPrice": market[-1].close}
        for market in (BINANCE, BTC, ETH)
    ]


def test_latest_candles_give_the_newest_candle_of_each_market(api: UvicornServer) -> None:
    body = post(api, '{ all: latestCandles(timeframe: "1m") { exchange symbol close } '
                     'sim: latestCandles(timeframe: "5m", exchange: "sim") { symbol ts } }')
    assert body["data"]["all"] == [
        {"exchange": m[-1].exchange, "symbol": m[-1].symbol, "close": m[-1].close}
        for m in (BINANCE, BTC, ETH)
    ]
    assert body["data"]["sim"] == [
        {"symbol": m[-1].symbol, "ts": iso(aggregate(m, "5m")[-1].ts)} for m in (BTC, ETH)
    ]


def test_latest_candles_refuse_a_timeframe_that_is_not_stored(api: UvicornServer) -> None:
    error = error_of(post(api, '{ latestCandles(timeframe: "2h") { ts } }'))
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "argument": "timeframe"}


@pytest.mark.parametrize("field", ["candles", "candlesPage", "candleSeries"])
def test_an_unknown_market_is_not_found_and_an_empty_range_is_empty(
    api: UvicornServer, field: str
) -> None:
    selection = "{ nodes { ts } }" if field == "candlesPage" else "{ ts }"
    unknown = post(api, f'{{ {field}(exchange: "sim", symbol: "DOGE-USDT", timeframe: "1m") '
                        f"{selection} }}")
    assert error_of(unknown)["extensions"] == {"code": "NOT_FOUND"}
    assert "sim:DOGE-USDT" in error_of(unknown)["message"]
    empty = post(api, f'{{ {field}({MARKET}, timeframe: "1m", end: "2020-01-01T00:00:00Z") '
                      f"{selection} }}")
    assert "errors" not in empty
    value = empty["data"][field]
    assert value == ({"nodes": []} if field == "candlesPage" else [] if field == "candles"
                     else {"ts": []})


def test_aliases_fragments_typename_and_skip_shape_a_long_list_as_usual(
    api: UvicornServer,
) -> None:
    body = post(
        api,
        "query($skip: Boolean!) { candles(" + MARKET + ', timeframe: "1m", limit: 400) '
        "{ __typename t: ts ...prices c2: close volume @skip(if: $skip) } } "
        "fragment prices on Candle { close open }",
        skip=True,
    )
    rows = body["data"]["candles"]
    assert rows[0] == {"__typename": "Candle", "t": iso(BTC[-400].ts), "close": BTC[-400].close,
                       "open": BTC[-400].open, "c2": BTC[-400].close}
    assert list(rows[-1]) == ["__typename", "t", "close", "open", "c2"]
    assert len(rows) == 400
