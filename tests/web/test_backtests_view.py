"""Backtests from the page, in a real browser: run, progress, results equal to the API's,
trade markers where the trades were, cancel, past runs compared, sweeps ranked, and the API's
errors beside the fields they name."""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Any

from tests.conditions import wait_until
from tests.graphql.clients import post
from tests.servers import LiveApi
from tests.web.conftest import LONG_SYMBOL, ClientPage

METRICS = ("totalReturn cagr annualVolatility sharpe sortino calmar maxDrawdown "
           "maxDrawdownDurationSeconds exposure buyAndHoldReturn tradeCount winRate profitFactor "
           "expectancy averageWin averageLoss bestTrade worstTrade totalFees startingEquity "
           "finalEquity barCount")
RUN = "mutation($input: BacktestInput!) { runBacktest(input: $input) { id } }"


def api_data(site: LiveApi, query: str, **variables: Any) -> dict[str, Any]:
    body = post(site, query, **variables)
    assert "errors" not in body, body["errors"]
    return body["data"]


def finished(site: LiveApi, id: str) -> dict[str, Any]:
    query = "query($id: ID!) { backtest(id: $id) { status } }"
    return wait_until(
        lambda: api_data(site, query, id=id)["backtest"]["status"] in {"SUCCEEDED", "FAILED"}
        and api_data(site, query, id=id)["backtest"], timeout_s=60, what=f"backtest {id}")


def all_trades(site: LiveApi, id: str) -> list[dict[str, Any]]:
    query = """query($id: ID!, $offset: Int!) { backtest(id: $id) {
        trades(offset: $offset, limit: 1000) { side entryTime exitTime entryPrice exitPrice } } }"""
    trades: list[dict[str, Any]] = []
    while page := api_data(site, query, id=id, offset=len(trades))["backtest"]["trades"]:
        trades += page
    return trades


async def fill_form(client: ClientPage, view: str, strategy: str, **params: str) -> Any:
    form = client.page.locator(f"#{view} form.strategy-form")
    await form.wait_for(state="visible")
    await form.locator("select[name=strategy]").select_option(strategy)
    for name, value in params.items():
        await form.locator(f"input[name={name}]").fill(value)
    return form


async def submit_for(client: ClientPage, form: Any, table: str, attribute: str) -> str:
    """Submit the form, wait for the result `table` it brings, and give the run id the table
    names in `attribute`."""
    await form.locator("button[name=submit]").click()
    shown = client.page.locator(table)
    await shown.wait_for(timeout=90_000)
    id = await shown.get_attribute(attribute)
    assert id is not None
    return id


async def metrics_shown(client: ClientPage, table: str) -> dict[str, Any]:
    return await client.js(f"""() => Object.fromEntries(
        [...document.querySelectorAll('{table} td[data-metric]')].map(
            td => [td.dataset.metric, JSON.parse(td.dataset.value)]))""")


async def test_a_backtest_run_from_the_page_succeeds_with_the_apis_metrics_and_trade_markers(
    client_page: ClientPage, history_site: LiveApi
) -> None:
    client_page.base_url = history_site.url
    await client_page.open("#/backtest")
    form = await fill_form(client_page, "backtest", "ema_cross", fast="5", slow="20")
    await form.locator("button[name=submit]").click()
    await client_page.page.locator(
        "#backtest .progress .status[data-status=SUCCEEDED]").wait_for(timeout=60_000)
    await client_page.until("() => document.querySelector('#results').dataset.markers")
    id = re.search(r"id=([^&]+)", client_page.page.url).group(1)  # type: ignore[union-attr]  # the page URL carries an id

    run = api_data(history_site, f"query($id: ID!) {{ backtest(id: $id) {{ status params "
                                 f"timeframe metrics {{ {METRICS} }} }} }}", id=id)["backtest"]
    assert run["params"] == {"fast": 5, "slow": 20}
    assert await metrics_shown(client_page, "#results table.metrics") == run["metrics"]
    assert await client_page.js("() => document.querySelector('progress').value") == 1

    trades = all_trades(history_site, id)
    assert len(trades) == run["metrics"]["tradeCount"] > 0
    markers = await client_page.js("() => candlegraph.backtest.results.price.markers.markers()")
    bars = {bar["time"]: bar for bar in await client_page.js(
        "() => candlegraph.backtest.results.price.candles.data()")}
    expected = []
    for trade in trades:
        # A fill happens at the close of the bar that made it: the marker sits on that bar,
        # at the fill price, which is that bar's close (to the last bits: the API's fill
        # prices come back from the engine's fixed-point prices).
        for time, price in ((trade["entryTime"], trade["entryPrice"]),
                            (trade["exitTime"], trade["exitPrice"])):
            bar_time = datetime.fromisoformat(time).timestamp() - 60
            assert math.isclose(bars[bar_time]["close"], price, rel_tol=1e-12)
            expected.append({"time": bar_time, "price": price})
    assert sorted((m["time"], m["price"]) for m in markers) == sorted(
        (e["time"], e["price"]) for e in expected)
    assert {m["text"] for m in markers} == {"buy", "sell"}
    await client_page.screenshot("backtest")

    # The trades table, a page at a time.
    await client_page.page.locator("#trades table.trades[data-offset='0']").wait_for()
    rows = client_page.page.locator("#trades table.trades tbody tr")
    assert await rows.count() == min(50, len(trades))
    if len(trades) > 50:
        await client_page.page.locator("#trades button[name=next]").click()
        await client_page.page.locator("#trades table.trades[data-offset='50']").wait_for()
        assert await rows.count() == min(50, len(trades) - 50)


async def test_a_bad_parameter_shows_the_apis_message_beside_its_field(
    client_page: ClientPage, history_site: LiveApi
) -> None:
    client_page.base_url = history_site.url
    await client_page.open("#/backtest")
    form = await fill_form(client_page, "backtest", "ema_cross", fast="1", slow="20")
    await form.locator("button[name=submit]").click()
    shown = form.locator("[data-arg~='input.params.fast'] .error")
    await shown.wait_for(state="visible")
    sent = await client_page.js("() => candlegraph.backtest.form.read()")
    (error,) = post(history_site, RUN, **sent)["errors"]
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "argument": "input.params.fast"}
    assert await shown.inner_text() == f"BAD_USER_INPUT {error['message']}"
    assert await form.locator(".form-error").is_hidden()
    assert await form.locator("input[name=fast]").get_attribute("aria-invalid") == "true"
    await client_page.screenshot("backtest-error")


async def test_a_running_backtest_is_cancelled_from_the_page(
    client_page: ClientPage, history_site: LiveApi
) -> None:
    client_page.base_url = history_site.url
    await client_page.open("#/backtest")
    form = await fill_form(client_page, "backtest", "ema_cross", fast="10", slow="30")
    await form.locator("select[name=market]").select_option(f"sim {LONG_SYMBOL}")
    await form.locator("button[name=submit]").click()
    cancel = client_page.page.locator("#backtest button[name=cancel]")
    await cancel.wait_for(state="visible")
    await cancel.click()
    await client_page.page.locator(
        "#backtest .status[data-status=CANCELLED]").wait_for(timeout=30_000)
    id = re.search(r"id=([^&]+)", client_page.page.url).group(1)  # type: ignore[union-attr]  # the page URL carries an id
    status = api_data(history_site, "query($id: ID!) { backtest(id: $id) { status metrics "
                                    "{ tradeCount } } }", id=id)["backtest"]
    assert status == {"status": "CANCELLED", "metrics": None}
    assert await cancel.is_hidden()


async def test_past_runs_are_listed_and_compared_side_by_side(
    client_page: ClientPage, history_site: LiveApi
) -> None:
    ids = []
    for fast, slow in ((8, 21), (13, 34)):
        sent = {"exchange": "sim", "symbol": "BTC-USDT", "timeframe": "1m",
                "strategy": "ema_cross", "start": "2023-11-14T00:00:00Z",
                "end": "2023-11-20T00:00:00Z", "params": {"fast": fast, "slow": slow}}
        ids.append(api_data(history_site, RUN, input=sent)["runBacktest"]["id"])
    for id in ids:
        assert finished(history_site, id)["status"] == "SUCCEEDED"

    client_page.base_url = history_site.url
    await client_page.open("#/runs")
    for id in ids:
        await client_page.page.locator(f"#runs tr[data-id='{id}'] input").check()
    await client_page.page.locator("#runs button[name=compare]").click()
    await client_page.page.locator("#comparison table.metrics").wait_for()
    ids.reverse()  # the list is newest first, and so is the comparison
    assert client_page.page.url.endswith(f"#/runs?compare={ids[0]},{ids[1]}")

    shown = await client_page.js("""() => [...document.querySelectorAll(
        '#comparison table.metrics tbody tr')].map(tr => [...tr.querySelectorAll('td')].map(
        td => [td.dataset.metric, JSON.parse(td.dataset.value)]))""")
    for column, id in enumerate(ids):
        expected = api_data(history_site, f"query($id: ID!) {{ backtest(id: $id) {{ "
                                          f"metrics {{ {METRICS} }} }} }}", id=id)
        assert {row[column][0]: row[column][1] for row in shown} == \
            expected["backtest"]["metrics"]
    curves = await client_page.js(
        "() => candlegraph.runs.chart.series.filter((s, i) => i % 2 === 0).map(s => s.data())")
    for curve, id in zip(curves, ids, strict=True):
        equity = api_data(history_site, "query($id: ID!) { backtest(id: $id) { equity "
                                        "{ ts equity } } }", id=id)["backtest"]["equity"]
        assert curve == [{"time": ts / 1000, "value": v}
                         for ts, v in zip(equity["ts"], equity["equity"], strict=True)]
    await client_page.screenshot("runs-compared")


async def test_a_sweeps_ranking_table_matches_the_api_and_its_rows_open_their_runs(
    client_page: ClientPage, history_site: LiveApi
) -> None:
    client_page.base_url = history_site.url
    await client_page.open("#/sweep")
    form = await fill_form(client_page, "sweep", "ema_cross", fast="5, 10", slow="20, 30")
    await form.locator("select[name=rankBy]").select_option("total_return")
    id = await submit_for(client_page, form, "#ranking table.ranking", "data-sweep")
    ranking = api_data(history_site, """query($id: ID!) { backtest(id: $id) { ranking {
        rankBy runs { rank id params metrics { totalReturn sharpe maxDrawdown winRate
        tradeCount finalEquity } } } } }""", id=id)["backtest"]["ranking"]
    assert ranking["rankBy"] == "total_return" and len(ranking["runs"]) == 4

    rows = await client_page.js("""() => [...document.querySelectorAll(
        '#ranking tbody tr')].map(tr => ({id: tr.dataset.id, rank: Number(tr.dataset.rank),
        metrics: Object.fromEntries([...tr.querySelectorAll('td[data-metric]')].map(
            td => [td.dataset.metric, JSON.parse(td.dataset.value)]))}))""")
    assert rows == [{"id": run["id"], "rank": run["rank"], "metrics": run["metrics"]}
                    for run in ranking["runs"]]
    returns = [row["metrics"]["totalReturn"] for row in rows]
    assert returns == sorted(returns, key=lambda r: -math.inf if r is None else r, reverse=True)
    assert await client_page.js("() => document.querySelector('#sweep progress').value") == 1
    await client_page.screenshot("sweep")

    best = ranking["runs"][0]
    await client_page.page.locator(f"#ranking tr[data-id='{best['id']}']").click()
    await client_page.page.locator(f"#run-title[data-id='{best['id']}']").wait_for()
    full = api_data(history_site, f"query($id: ID!) {{ backtest(id: $id) {{ metrics "
                                  f"{{ {METRICS} }} }} }}", id=best["id"])["backtest"]["metrics"]
    assert await metrics_shown(client_page, "#results table.metrics") == full
    await client_page.screenshot("sweep-run")


async def test_a_tpe_search_from_the_sweep_form_runs_its_trials_from_the_grids_values(
    client_page: ClientPage, history_site: LiveApi
) -> None:
    client_page.base_url = history_site.url
    await client_page.open("#/sweep")
    form = await fill_form(client_page, "sweep", "ema_cross", fast="5, 10, 15", slow="20, 30")
    trials = form.locator("input[name=trials]")
    assert await trials.is_hidden()  # GRID: every combination, no trials to give
    await form.locator("select[name=method]").select_option("TPE")
    await trials.fill("4")
    await form.locator("input[name=seed]").fill("5")
    id = await submit_for(client_page, form, "#ranking table.ranking", "data-sweep")
    ranking = api_data(history_site, """query($id: ID!) { backtest(id: $id) { ranking {
        runs { id params } } } }""", id=id)["backtest"]["ranking"]

    shown = await client_page.js(
        "() => [...document.querySelectorAll('#ranking tbody tr')].map(tr => tr.dataset.id)")
    assert shown == [run["id"] for run in ranking["runs"]]
    chosen = [(run["params"]["fast"], run["params"]["slow"]) for run in ranking["runs"]]
    assert len(set(chosen)) == 4
    assert all(fast in (5, 10, 15) and slow in (20, 30) for fast, slow in chosen)
    await client_page.screenshot("tpe-search")


async def test_a_walk_forward_from_the_page_shows_the_apis_folds_metrics_and_stitched_curve(
    client_page: ClientPage, history_site: LiveApi
) -> None:
    client_page.base_url = history_site.url
    await client_page.open("#/walkforward")
    form = await fill_form(client_page, "walkforward", "ema_cross", fast="5, 10", slow="20, 30")
    await form.locator("input[name=folds]").fill("2")
    id = await submit_for(client_page, form, "#walkforward-result table.folds",
                          "data-walkforward")
    result = api_data(history_site, f"""query($id: ID!) {{ backtest(id: $id) {{ status
        walkForward {{ efficiency metrics {{ {METRICS} }} folds {{ index testId params
        outOfSample {{ totalReturn sharpe tradeCount }} }} }} equity {{ ts equity }} }} }}""",
                      id=id)["backtest"]
    walk = result["walkForward"]
    assert result["status"] == "SUCCEEDED" and len(walk["folds"]) == 2

    rows = await client_page.js("""() => [...document.querySelectorAll(
        '#walkforward-result table.folds tbody tr')].map(tr => ({
        index: Number(tr.dataset.index), testId: tr.dataset.testId,
        figures: [...tr.querySelectorAll('td[data-value]')].map(td => JSON.parse(td.dataset.value))
        }))""")
    assert [(row["index"], row["testId"]) for row in rows] == [
        (fold["index"], fold["testId"]) for fold in walk["folds"]]
    for row, fold in zip(rows, walk["folds"], strict=True):
        out = fold["outOfSample"]
        assert row["figures"][2:] == [out["totalReturn"], out["sharpe"], out["tradeCount"]]
    assert await metrics_shown(client_page, "#walkforward-result table.metrics") == walk["metrics"]
    efficiency = await client_page.js(
        "() => JSON.parse(document.querySelector('#efficiency').dataset.value)")
    assert efficiency == walk["efficiency"]
    curve = await client_page.js(
        "() => candlegraph.walkforward.chart.series[0].data().map(p => p.value)")
    assert curve == result["equity"]["equity"]
    await client_page.screenshot("walkforward")

    first = walk["folds"][0]
    await client_page.page.locator(
        f"#walkforward-result tr[data-test-id='{first['testId']}']").click()
    await client_page.page.locator(f"#run-title[data-id='{first['testId']}']").wait_for()


async def test_folds_that_do_not_fit_show_the_apis_message_beside_the_test_bars(
    client_page: ClientPage, history_site: LiveApi
) -> None:
    client_page.base_url = history_site.url
    await client_page.open("#/walkforward")
    form = await fill_form(client_page, "walkforward", "ema_cross", fast="5", slow="20")
    await form.locator("input[name=testBars]").fill("100000000")
    await form.locator("button[name=submit]").click()
    shown = form.locator("[data-arg~='testBars'] .error")
    await shown.wait_for(state="visible")

    assert (await shown.inner_text()).startswith("BAD_USER_INPUT ")
    assert await form.locator(".form-error").is_hidden()
    assert await client_page.js("() => location.hash") == "#/walkforward"
