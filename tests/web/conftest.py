"""The web client in Debian's chromium, driven by Playwright's async API, against real parts:
uvicorn on loopback, a NATS server, a SQLite store, and (for live candles) the flow process.

Every page blocks requests that leave this machine and fails its test on any uncaught script
error. Screenshots of each view go to the test's temporary folder.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from db.indicator_store import IndicatorValues
from db.sqlite import SqliteStore
from market.indicators import IndicatorSet
from market.messages import Candle
from server.settings import Settings
from tests.browsers import require_chromium
from tests.servers import LiveApi, NatsServer
from tests.walks import minute_walk

playwright = pytest.importorskip("playwright.async_api")

HISTORY_BARS = 3_000
#: A market long enough (about 3 s of backtest) to cancel a run while it goes.
LONG_SYMBOL, LONG_BARS = "ETH-USDT", 60_000
VIEWPORT = {"width": 1400, "height": 860}


def store_history(store: SqliteStore, candles: list[Candle]) -> None:
    """Closed candles with the flow's default indicators over them (the same engine)."""
    store.upsert_candles(candles)
    indicators = IndicatorSet()
    rows = []
    for c in candles:
        indicators.update(c.ts, c.open, c.high, c.low, c.close, c.volume)
        values = {k: v for k, v in indicators.values().items() if math.isfinite(v)}
        if values:
            rows.append(IndicatorValues(c.exchange, c.symbol, c.timeframe, c.ts, values))
    store.upsert_indicator_values(rows)


@pytest.fixture(scope="package")
def web_nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path_factory.mktemp("web-nats"))
    yield server
    server.stop()


@pytest.fixture(scope="package")
def history_site(
    tmp_path_factory: pytest.TempPathFactory, web_nats: NatsServer
) -> Iterator[LiveApi]:
    """A server over 3,000 one-minute candles of sim BTC-USDT with their indicators (and
    60,000 of ETH-USDT without), with one backtest worker."""
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("web-history"), nats_url=web_nats.url,
        timeframes=("1s", "1m"), backtest_workers=1, sweep_max_runs=6,
    )
    store = SqliteStore(settings.store_path)
    store_history(store, minute_walk(HISTORY_BARS))
    store.upsert_candles(minute_walk(LONG_BARS, symbol=LONG_SYMBOL, seed=11))
    store.close()
    site = LiveApi(settings)
    yield site
    site.stop()


@pytest.fixture(scope="package")
async def browser() -> AsyncIterator[Any]:
    binary = require_chromium()
    async with playwright.async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=binary, headless=True)
        yield chromium
        await chromium.close()


class ClientPage:
    """One browser page on the web client, with what it did that a test must see."""

    def __init__(self, page: Any, base_url: str, shots: Path) -> None:
        self.page = page
        self.base_url = base_url
        self.shots = shots
        self.errors: list[str] = []
        self.off_box: list[str] = []

    async def open(self, route: str = "") -> None:
        await self.page.goto(f"{self.base_url}/{route}", wait_until="load")

    async def js(self, expression: str, arg: object = None) -> Any:
        return await self.page.evaluate(expression, arg)

    async def until(self, expression: str, arg: object = None, *, timeout_s: float = 10) -> Any:
        """Wait until `expression` (a JS function of `arg`) is truthy in the page; its value."""
        handle = await self.page.wait_for_function(expression, arg=arg, timeout=timeout_s * 1000)
        return await handle.json_value()

    async def screenshot(self, name: str) -> Path:
        path = self.shots / f"{name}.png"
        await self.page.screenshot(path=path)
        return path


@pytest.fixture
async def client_page(browser: Any, tmp_path: Path) -> AsyncIterator[ClientPage]:
    """A fresh page (its own storage); base URL set by `client.base_url` before `open`."""
    context = await browser.new_context(viewport=VIEWPORT)
    page = await context.new_page()
    client = ClientPage(page, "", tmp_path)

    async def only_loopback(route: Any) -> None:
        if urlsplit(route.request.url).hostname in {"127.0.0.1", "localhost"}:
            await route.continue_()
        else:
            client.off_box.append(route.request.url)
            await route.abort()

    page.on("pageerror", lambda error: client.errors.append(str(error)))
    await page.route("**/*", only_loopback)
    yield client
    await context.close()
    assert client.errors == [], f"uncaught errors in the page: {client.errors}"
    assert client.off_box == [], f"requests off this machine: {client.off_box}"
