"""Queries over real HTTP against uvicorn on loopback."""

from __future__ import annotations

import httpx
import pytest

from graphql_schema.schema import build_schema
from tests.graphql.clients import post
from tests.graphql.conftest import sample_candles
from tests.servers import UvicornServer

CANDLE_FIELDS = "ts open high low close volume trades vwap closed"


def test_candles_query_returns_the_newest_candles_oldest_first(api: UvicornServer) -> None:
    body = post(api, '{ candles(exchange: "sim", symbol: "BTC-USDT", timeframe: "1s", limit: 3) '
                     f"{{ {CANDLE_FIELDS} }} }}")
    expected = sample_candles()[-3:]
    assert "errors" not in body
    rows = body["data"]["candles"]
    assert [r["ts"] for r in rows] == [
        "2023-11-14T22:14:27+00:00", "2023-11-14T22:14:28+00:00", "2023-11-14T22:14:29+00:00"
    ]
    assert [(r["open"], r["high"], r["low"], r["close"], r["volume"], r["trades"], r["vwap"])
            for r in rows] == [
        (c.open, c.high, c.low, c.close, c.volume, c.trades, c.vwap) for c in expected
    ]
    assert all(r["closed"] for r in rows)


def test_candles_query_filters_by_time_range(api: UvicornServer) -> None:
    body = post(
        api,
        "query($start: DateTime, $end: DateTime) { candles(exchange: \"sim\", "
        "symbol: \"BTC-USDT\", timeframe: \"1s\", start: $start, end: $end) { ts } }",
        start="2023-11-14T22:14:05Z", end="2023-11-14T22:14:08+00:00",
    )
    assert [r["ts"][-14:-6] for r in body["data"]["candles"]] == [
        "22:14:05", "22:14:06", "22:14:07"
    ]


def test_symbols_lists_every_market_with_candles(api: UvicornServer) -> None:
    body = post(api, "{ symbols { exchange symbol } }")
    assert body["data"]["symbols"] == [
        {"exchange": "binance", "symbol": "ETH-USDT"}, {"exchange": "sim", "symbol": "BTC-USDT"}
    ]


@pytest.mark.parametrize(
    ("arguments", "argument"),
    [
        ('exchange: "sim", symbol: "BTC-USDT", timeframe: "2x"', "timeframe"),
        ('exchange: "sim", symbol: "BTC-USDT", timeframe: "1s", limit: 0', "limit"),
        ('exchange: "sim", symbol: "BTC-USDT", timeframe: "1s", limit: 501', "limit"),
        ('exchange: "sim", symbol: "btc/usdt", timeframe: "1s"', "symbol"),
        ('exchange: "SIM*", symbol: "BTC-USDT", timeframe: "1s"', "exchange"),
        ('exchange: "sim", symbol: "BTC-USDT", timeframe: "1s", '
         'start: "2023-11-14T22:14:08Z", end: "2023-11-14T22:14:05Z"', "end"),
    ],
)
def test_a_bad_argument_gives_an_error_naming_it(
    api: UvicornServer, arguments: str, argument: str
) -> None:
    body = post(api, f"{{ candles({arguments}) {{ ts }} }}")
    [error] = body["errors"]
    assert f"Argument '{argument}'" in error["message"]
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "argument": argument}
    assert body["data"] is None


def test_a_wrong_argument_type_is_a_validation_error(api: UvicornServer) -> None:
    body = post(api, '{ candles(exchange: "sim", symbol: "BTC-USDT", timeframe: "1s", '
                     'limit: "ten") { ts } }')
    assert "Int cannot represent non-integer value" in body["errors"][0]["message"]


def test_malformed_queries_and_too_many_aliases_are_refused(api: UvicornServer) -> None:
    assert "Syntax Error" in post(api, "{ candles(")["errors"][0]["message"]
    aliases = " ".join(f"a{i}: symbols {{ symbol }}" for i in range(16))
    assert "16 aliases found. Allowed: 15" in post(api, f"{{ {aliases} }}")["errors"][0]["message"]
    tokens = " ".join(["symbols { symbol }"] * 600)
    assert "more than 2000 tokens" in post(api, f"{{ {tokens} }}")["errors"][0]["message"]


async def test_an_over_deep_query_is_refused() -> None:
    schema = build_schema(max_depth=0)
    result = await schema.execute("{ symbols { symbol } }")
    assert result.errors is not None
    assert "exceeds maximum operation depth" in result.errors[0].message


def test_graphiql_is_served_with_its_assets_from_this_server(api: UvicornServer) -> None:
    page = httpx.get(f"{api.url}/graphql", headers={"accept": "text/html"})
    assert page.status_code == 200
    assert "/graphiql-assets/graphiql.min.js" in page.text
    assert "unpkg.com" not in page.text and "jsdelivr" not in page.text
    assert 'candles(exchange: \\"sim\\", symbol: \\"BTC-USDT\\"' in page.text
    for asset in ("graphiql.min.js", "graphiql.min.css", "react.production.min.js",
                  "react-dom.production.min.js"):
        assert httpx.get(f"{api.url}/graphiql-assets/{asset}").status_code == 200


def test_health_reports_nats_and_store(api: UvicornServer) -> None:
    assert httpx.get(f"{api.url}/health").json() == {"status": "ok", "nats": "ok", "store": "ok"}
    ready = httpx.get(f"{api.url}/ready")
    assert ready.status_code == 200 and ready.json()["ready"] is True
