"""The market view in a real browser: the chart holds exactly the API's candles, pages back
through the cursors, and draws stored and on-demand indicators as the API gives them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx

from tests.servers import LiveApi
from tests.web.conftest import HISTORY_BARS, ClientPage

ROUTE = "#/market?exchange=sim&symbol=BTC-USDT&timeframe=1m&bars=1000"
MARKET = 'exchange: "sim", symbol: "BTC-USDT", timeframe: "1m"'


def api_data(site: LiveApi, query: str, **variables: Any) -> dict[str, Any]:
    body = httpx.post(f"{site.url}/graphql", json={"query": query, "variables": variables},
                      timeout=30).json()
    assert "errors" not in body, body["errors"]
    return body["data"]


def api_errors(site: LiveApi, query: str) -> list[dict[str, Any]]:
    return httpx.post(f"{site.url}/graphql", json={"query": query}, timeout=30).json()["errors"]


def api_candles(site: LiveApi, limit: int) -> dict[str, list[float]]:
    return api_data(site, f"{{ candleSeries({MARKET}, limit: {limit}) "
                          "{ ts open high low close volume } }")["candleSeries"]


def as_bars(series: dict[str, list[float]]) -> list[dict[str, float]]:
    return [
        {"time": ts / 1000, "open": o, "high": h, "low": lo, "close": c}
        for ts, o, h, lo, c in zip(series["ts"], series["open"], series["high"], series["low"],
                                   series["close"], strict=True)
    ]


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat()


async def open_market(client: ClientPage, site: LiveApi) -> None:
    client.base_url = site.url
    await client.open(ROUTE)
    await client.until("() => document.querySelector('#live-status')?.dataset.state === 'live'")


async def test_the_chart_holds_the_stored_candles_and_pages_back_through_the_cursors(
    client_page: ClientPage, history_site: LiveApi
) -> None:
    await open_market(client_page, history_site)
    newest = api_candles(history_site, 1000)
    held = await client_page.js("() => candlegraph.market.chart.candles.data()")
    volumes = await client_page.js("() => candlegraph.market.chart.volume.data().map(v => v.value)")
    assert held == as_bars(newest)
    assert volumes == newest["volume"]
    await client_page.screenshot("market")

    # Scrolling to the oldest candle loads the page before it, until there is none.
    for count in (2000, HISTORY_BARS):
        await client_page.js(
            "() => candlegraph.market.chart.chart.timeScale().setVisibleLogicalRange("
            "{from: 0, to: 120})")
        await client_page.until(
            "n => candlegraph.market.chart.candles.data().length === n", count)
    await client_page.js("() => candlegraph.market.loadOlder()")
    assert await client_page.js("() => candlegraph.market.page.hasPreviousPage") is False
    held = await client_page.js("() => candlegraph.market.chart.candles.data()")
    assert held == as_bars(api_candles(history_site, HISTORY_BARS))


async def test_stored_indicators_are_drawn_on_the_price_and_in_panes_as_the_api_gives_them(
    client_page: ClientPage, history_site: LiveApi
) -> None:
    await open_market(client_page, history_site)
    await client_page.until("() => document.querySelector('#stored-indicators').dataset.ready")
    first = (await client_page.js("() => candlegraph.market.chart.candles.data()[0].time"))
    answer = api_data(
        history_site,
        f"{{ indicators({MARKET}, names: [\"sma_20\", \"bbands_20_2.upper\", \"rsi_14\", "
        f"\"macd_12_26_9.hist\"], start: \"{_iso(first)}\", limit: 1000) "
        "{ ts series { name values } } }")["indicators"]
    plotted = await client_page.js("""() => Object.fromEntries(
        [...candlegraph.market.chart.plots].map(([name, series]) =>
            [name, {pane: series.getPane().paneIndex(), type: series.seriesType(),
                    points: series.data()}]))""")
    for output in answer["series"]:
        expected = [
            {"time": ts / 1000, "value": value}
            for ts, value in zip(answer["ts"], output["values"], strict=True)
            if value is not None
        ]
        assert plotted[output["name"]]["points"] == expected, output["name"]
    assert plotted["sma_20"]["pane"] == 0 and plotted["bbands_20_2.upper"]["pane"] == 0
    # Panes below the price in the order of the list: macd_12_26_9, then rsi_14.
    assert plotted["macd_12_26_9.hist"]["pane"] == 1 and plotted["rsi_14"]["pane"] == 2
    assert plotted["macd_12_26_9.hist"]["type"] == "Histogram"
    assert "bbands_20_2.percent" not in plotted
    assert await client_page.js("() => candlegraph.market.chart.chart.panes().length") == 3
    await client_page.screenshot("market-indicators")


async def test_any_pandas_ta_indicator_is_computed_on_demand_and_its_errors_shown_by_field(
    client_page: ClientPage, history_site: LiveApi
) -> None:
    await open_market(client_page, history_site)
    first = await client_page.js("() => candlegraph.market.chart.candles.data()[0].time")
    form = client_page.page.locator("#computed-form")
    await form.locator("input[name=name]").fill("ema")
    await form.locator("input[name=params]").fill('{"length": 50}')
    await form.locator("button").click()
    await client_page.until("() => candlegraph.market.chart.plots.has('EMA_50')")
    answer = api_data(
        history_site,
        f'{{ indicator({MARKET}, name: "ema", params: {{length: 50}}, start: "{_iso(first)}", '
        "limit: 1000) { ts series { name values } } }")["indicator"]
    expected = [{"time": ts / 1000, "value": v}
                for ts, v in zip(answer["ts"], answer["series"][0]["values"], strict=True)
                if v is not None]
    assert await client_page.js(
        "() => candlegraph.market.chart.plots.get('EMA_50').data()") == expected
    assert await client_page.js(
        "() => candlegraph.market.chart.plots.get('EMA_50').getPane().paneIndex()") == 0

    await form.locator("input[name=params]").fill('{"length": "long"}')
    await form.locator("button").click()
    shown = form.locator("[data-arg=params] .error")
    await shown.wait_for(state="visible")
    (error,) = api_errors(
        history_site, f'{{ indicator({MARKET}, name: "ema", params: {{length: "long"}}) '
                      "{ ts } }")
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "argument": "params.length"}
    assert await shown.inner_text() == f"BAD_USER_INPUT {error['message']}"
    await client_page.screenshot("market-indicator-error")

    await form.locator("input[name=name]").fill("no_such_thing")
    await form.locator("input[name=params]").fill("")
    await form.locator("button").click()
    shown = form.locator("[data-arg=name] .error")
    await shown.wait_for(state="visible")
    (error,) = api_errors(
        history_site, f'{{ indicator({MARKET}, name: "no_such_thing") {{ ts }} }}')
    assert error["extensions"]["argument"] == "name"
    assert await shown.inner_text() == f"BAD_USER_INPUT {error['message']}"
    assert await form.locator("[data-arg=params] .error").is_hidden()

