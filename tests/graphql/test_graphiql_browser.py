"""GraphiQL in a real headless Chromium, with every request off this machine blocked.

Debian's `chromium` is driven by Playwright through `executable_path` (Playwright's own browser
download is not used). Playwright's sync API runs in this plain test function, outside the
event loop pytest-asyncio keeps for async tests; the server runs in a thread (`api`).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest

from tests.browsers import require_chromium
from tests.servers import UvicornServer

if TYPE_CHECKING:
    from playwright.sync_api import Route

playwright = pytest.importorskip("playwright.sync_api")


def test_graphiql_loads_offline_and_runs_its_example_query(api: UvicornServer) -> None:
    binary = require_chromium()
    off_box: list[str] = []
    page_errors: list[str] = []

    def only_loopback(route: Route) -> None:
        if urlsplit(route.request.url).hostname in {"127.0.0.1", "localhost"}:
            route.continue_()
        else:
            off_box.append(route.request.url)
            route.abort()

    with playwright.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=binary, headless=True)
        try:
            page = browser.new_page()
            page.on("pageerror", lambda error: page_errors.append(str(error)))
            page.route("**/*", only_loopback)
            page.goto(f"{api.url}/graphql", wait_until="load")
            run = page.locator(".graphiql-execute-button")
            run.wait_for(state="visible", timeout=20_000)
            editor = page.locator(".graphiql-query-editor").inner_text()
            run.click()
            result = page.locator(".result-window")
            playwright.expect(result).to_contain_text('"close"', timeout=20_000)
            shown = result.inner_text()
            if screenshot := os.environ.get("GRAPHIQL_SCREENSHOT"):
                page.screenshot(path=screenshot)
        finally:
            browser.close()

    assert "query LatestCandles" in editor
    assert '"data"' in shown and '"candles"' in shown and '"errors"' not in shown
    # The newest five stored candles, oldest first (the viewer renders the lines in view).
    assert '"ts": "2023-11-14T22:14:25+00:00"' in shown.replace("\xa0", " ")
    assert off_box == []
    assert page_errors == []
