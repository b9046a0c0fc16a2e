"""Live candles in a real browser: trades published on NATS go through the real flow process
and the server's subscription to the chart, and a dropped connection resumes without a gap.

The server is restarted on the same port to drop the page's websocket; meanwhile the flow goes
on storing the candles of the trades published, which the page must get back through `since`.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from nats.aio.client import Client

from db.sqlite import SqliteStore
from flows.publisher import publish_trades
from flows.streams import ensure_streams
from market.messages import Candle, Trade
from server.settings import Settings
from tests.conditions import wait_until
from tests.flows.flow_runs import start_flow
from tests.servers import LiveApi, NatsServer
from tests.web.conftest import ClientPage

S = 1_000_000_000
EXCHANGE, SYMBOL = "live", "BTC-USDT"
ROUTE = f"#/market?exchange={EXCHANGE}&symbol={SYMBOL}&timeframe=1s&bars=500"
LAST_CLOSE = "() => candlegraph.market.chart.candles.data().at(-1)?.close"


@pytest.fixture(scope="module")
def live_settings(tmp_path_factory: pytest.TempPathFactory, web_nats: NatsServer) -> Settings:
    settings = Settings(data_dir=tmp_path_factory.mktemp("web-live"), nats_url=web_nats.url,
                        timeframes=("1s", "1m"), backtest_workers=1)
    # Half a minute of stored history just before now, so the market exists.
    start = (time.time_ns() - 40 * S) // S * S
    store = SqliteStore(settings.store_path)
    store.upsert_candles([
        Candle(EXCHANGE, SYMBOL, "1s", start + i * S, 100.0, 100.5, 99.5, 100.0 + i / 10, 1.0, 1,
               100.0, True)
        for i in range(30)
    ])
    store.close()
    return settings


@pytest.fixture(scope="module")
def flow(live_settings: Settings) -> Iterator[subprocess.Popen]:
    proc = start_flow(live_settings.nats_url, live_settings.data_dir, timeframes="1s,1m",
                      allowed_lateness_s="1", flow_recovery="false")
    yield proc
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=15)


@pytest.fixture(scope="module")
def live_site(live_settings: Settings, flow: subprocess.Popen) -> Iterator[list[LiveApi]]:
    """The server, in a list so a test can put its restarted self in."""
    sites = [LiveApi(live_settings)]
    yield sites
    sites[-1].stop()


@pytest.fixture
def nats_url(web_nats: NatsServer) -> str:
    """`nc` (tests/conftest.py) connects to the web tests' server."""
    return web_nats.url


@pytest.fixture
async def trades(nc: Client) -> Trades:
    await ensure_streams(nc.jetstream())
    return Trades(nc)


class Trades:
    """Trades of the live market at the wall clock's time, each a distinct price."""

    def __init__(self, nc: Client) -> None:
        self.js = nc.jetstream()
        self.count = 0

    async def publish(self, price: float, ts: int | None = None) -> int:
        self.count += 1
        ts = time.time_ns() if ts is None else ts
        await publish_trades(self.js, [Trade(EXCHANGE, SYMBOL, ts, price, 0.5, "buy",
                                             f"web-{time.time_ns()}-{self.count}")])
        return ts


async def open_live(client: ClientPage, site: LiveApi, trades: Trades) -> None:
    client.base_url = site.url
    await client.open(ROUTE)
    await client.until("() => document.querySelector('#live-status')?.dataset.state === 'live'")
    # The flow's first trade of a market also reads its history: wait for it once, untimed.
    await trades.publish(123.25)
    await client.until(f"() => ({LAST_CLOSE})() === 123.25", timeout_s=30)


async def test_a_trade_published_on_nats_shows_on_the_chart_within_a_second(
    client_page: ClientPage, live_site: list[LiveApi], trades: Trades
) -> None:
    await open_live(client_page, live_site[-1], trades)
    started = time.monotonic()
    await trades.publish(131.5)
    await client_page.until(f"() => ({LAST_CLOSE})() === 131.5",
                            timeout_s=1.0 - (time.monotonic() - started))
    assert time.monotonic() - started < 1.0
    await client_page.screenshot("live")


async def test_after_the_connection_drops_the_chart_resumes_without_a_gap(
    client_page: ClientPage, live_site: list[LiveApi], live_settings: Settings,
    trades: Trades,
) -> None:
    await open_live(client_page, live_site[-1], trades)
    first_ts = await client_page.js("() => candlegraph.market.chart.candles.data().at(-1).time")

    port = live_site[-1].port
    live_site[-1].stop()
    await client_page.until(
        "() => document.querySelector('#live-status').dataset.state === 'reconnecting'")
    # While the page is away, trades over the next four seconds of event time (a little ahead
    # of the clock, which the flow accepts): it closes and stores their candles, which the page
    # never sees live.
    first = int(first_ts) * S
    now = time.time_ns()
    for i in range(12):
        await trades.publish(140.0 + i, now + i * S // 3)
    last_closed = (now + 11 * S // 3) // S * S
    await trades.publish(160.0, last_closed + S + S // 2)
    wait_until(lambda: last_closed in {c.ts for c in _stored_since(live_settings, first)},
               timeout_s=15, what="the flow to store the candles of the trades published away")
    missed = _stored_since(live_settings, first)
    assert len(missed) >= 4

    live_site.append(LiveApi(live_settings, port=port))
    await client_page.until(
        "() => candlegraph.market.live.subscriptions >= 2 "
        "&& document.querySelector('#live-status').dataset.state === 'live'", timeout_s=20)
    await client_page.until(
        "t => candlegraph.market.chart.candles.data().some(bar => bar.time === t)",
        missed[-1].ts / S, timeout_s=10)
    held = await client_page.js(
        "t => candlegraph.market.chart.candles.data().filter(bar => bar.time >= t)", first_ts)
    expected = [{"time": c.ts / S, "open": c.open, "high": c.high, "low": c.low,
                 "close": c.close} for c in missed]
    # Every stored candle from the page's last one before the drop on, and nothing else but
    # perhaps the forming one after them.
    assert held[:len(expected)] == expected
    assert len(held) - len(expected) <= 1
    await client_page.screenshot("live-resumed")


def _stored_since(settings: Settings, ts: int) -> list[Candle]:
    store = SqliteStore(Path(settings.store_path))
    try:
        return store.candles(EXCHANGE, SYMBOL, "1s", start_ns=ts, limit=1000)
    finally:
        store.close()
