"""ccxt exchanges as the feed opens them: config merging, and Binance's lean trade parsing."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import ccxt.pro
import pytest

from flows.exchanges import (
    ExchangeConfigError,
    LeanBinance,
    check_exchange,
    merged,
    open_exchange,
    parse_config,
)
from tests.fake_binance import FakeBinance

READ = ("id", "timestamp", "price", "amount", "side", "symbol", "info")


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeBinance]:
    fake = FakeBinance().start()
    yield fake
    fake.stop()


def test_the_operators_config_is_merged_key_by_key_over_the_defaults() -> None:
    assert merged({"options": {"a": 1, "b": {"c": 2}}, "rateLimit": 50},
                  {"options": {"b": {"d": 3}}, "rateLimit": 100}) == {
        "options": {"a": 1, "b": {"c": 2, "d": 3}}, "rateLimit": 100,
    }
    assert parse_config("") == {}
    with pytest.raises(ExchangeConfigError, match="JSON object"):
        parse_config("[1, 2]")
    with pytest.raises(ExchangeConfigError, match="no exchange 'binanse'"):
        check_exchange("binanse")


def test_lean_binance_reads_public_trades_as_ccxt_does(fake: FakeBinance) -> None:
    made = fake.trade("BTCUSDT", 101.25, 0.5, buyer_maker=True)
    messages: list[dict[str, Any]] = [
        made.agg_event(made.ts_ms), made.trade_event(made.ts_ms),
        {**made.agg_event(made.ts_ms), "p": "-5.00"}, {**made.agg_event(made.ts_ms), "a": None},
        {**made.agg_event(made.ts_ms), "m": False, "q": "0.00000"},
    ]

    async def parse() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        lean = open_exchange("binance", fake.ccxt_config(), streaming=True)
        plain = ccxt.pro.binance({**fake.ccxt_config(),
                                  "options": {"fetchMarkets": {"types": ["spot"]}}})
        try:
            await lean.load_markets()
            await plain.load_markets()
            market = lean.market("BTC/USDT")
            return ([lean.parse_ws_trade(m, market) for m in messages],
                    [plain.parse_ws_trade(m, market) for m in messages])
        finally:
            await lean.close()
            await plain.close()

    lean_trades, ccxt_trades = asyncio.run(parse())
    assert isinstance(open_exchange("binance", {}, streaming=True), LeanBinance)
    for ours, theirs in zip(lean_trades, ccxt_trades, strict=True):
        assert {k: ours[k] for k in READ} == {k: theirs[k] for k in READ}
    assert lean_trades[0]["side"] == "sell" and lean_trades[0]["price"] == 101.25
