"""A server that wants API keys: the page asks for one, keeps it in the browser's storage only,
and sends it over HTTP and in the websocket's connection_init."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from db.sqlite import SqliteStore
from server.auth import digest
from server.settings import Settings
from tests.servers import LiveApi, NatsServer
from tests.walks import minute_walk
from tests.web.conftest import ClientPage

KEY = "cg_web-client-test-key"
ROUTE = "#/market?exchange=sim&symbol=BTC-USDT&timeframe=1m&bars=500"


@pytest.fixture(scope="module")
def locked_site(
    tmp_path_factory: pytest.TempPathFactory, web_nats: NatsServer
) -> Iterator[LiveApi]:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("web-locked"), nats_url=web_nats.url,
        timeframes=("1m",), backtest_workers=1, api_keys=(f"web:{digest(KEY)}",),
        public_queries=False,
    )
    store = SqliteStore(settings.store_path)
    store.upsert_candles(minute_walk(600))
    store.close()
    site = LiveApi(settings)
    yield site
    site.stop()


async def test_the_page_asks_for_a_key_and_sends_it_over_http_and_the_websocket(
    client_page: ClientPage, locked_site: LiveApi
) -> None:
    page = client_page.page
    sent_headers: list[str | None] = []
    ws_frames: list[dict[str, Any]] = []
    page.on("request", lambda r: sent_headers.append(r.headers.get("authorization"))
            if r.url.endswith("/graphql") and r.method == "POST" else None)
    page.on("websocket", lambda ws: ws.on(
        "framesent", lambda frame: ws_frames.append(json.loads(frame))))

    client_page.base_url = locked_site.url
    await client_page.open(ROUTE)
    key_form = page.locator("#key-form")
    await key_form.wait_for(state="visible")
    assert "needs an API key" in await page.locator("#key-reason").inner_text()
    assert set(sent_headers) == {None}
    await client_page.screenshot("api-key-asked")

    await key_form.locator("input[name=key]").fill(KEY)
    await key_form.locator("button:not([type])").click()
    await client_page.until(
        "() => document.querySelector('#live-status')?.dataset.state === 'live'")
    assert await key_form.is_hidden()
    assert await client_page.js("() => candlegraph.market.chart.candles.data().length") == 500
    assert await client_page.js("() => localStorage.getItem('candlegraph.apiKey')") == KEY
    assert f"Bearer {KEY}" in sent_headers
    assert {"type": "connection_init", "payload": {"Authorization": f"Bearer {KEY}"}} in ws_frames

    # A key the server does not know is refused, and the page asks again.
    await client_page.js("k => localStorage.setItem('candlegraph.apiKey', k)", "cg_wrong")
    await page.reload()
    await key_form.wait_for(state="visible")
    assert "not recognised" in await page.locator("#key-reason").inner_text()
