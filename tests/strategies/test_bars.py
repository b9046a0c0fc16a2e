"""Instrument precision from the data, and candles turned into close-stamped bars."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from strategies.bars import bar_type_for, candles_to_bars
from strategies.instrument import build_instrument, decimals_needed, size_precision_cap
from strategies.spec import BacktestSpec

HOUR = 3_600_000_000_000


@pytest.mark.parametrize(
    ("values", "cap", "expected"),
    [
        ([100.0, 2.0], 9, 0),
        ([1.5, 2.25], 9, 2),
        ([0.1 + 0.2, 43_251.37], 9, 2),  # 0.30000000000000004 is 0.3, not 17 decimals
        ([0.00001234], 9, 8),
        ([1 / 3], 9, 9),
        ([1 / 3], 4, 4),
    ],
)
def test_decimals_needed_is_the_fewest_that_represent_every_value(
    values: list[float], cap: int, expected: int
) -> None:
    assert decimals_needed(np.array(values), cap) == expected


def test_bar_types_name_the_step_and_are_external_last() -> None:
    assert str(bar_type_for("BTC-USDT.SIM", 60_000_000_000)) == (
        "BTC-USDT.SIM-1-MINUTE-LAST-EXTERNAL"
    )
    assert str(bar_type_for("BTC-USDT.SIM", 4 * HOUR)) == "BTC-USDT.SIM-4-HOUR-LAST-EXTERNAL"
    assert str(bar_type_for("BTC-USDT.SIM", 24 * HOUR)) == "BTC-USDT.SIM-1-DAY-LAST-EXTERNAL"


def test_bars_are_stamped_at_their_bucket_end_with_the_instrument_precision() -> None:
    spec = BacktestSpec(exchange="x", symbol="ETH-BTC", timeframe="1h", strategy="ema_cross")
    instrument = build_instrument(spec, price_precision=5, size_precision=3)
    frame = pl.DataFrame(
        {
            "ts": [0, HOUR],
            "open": [0.05, 0.05112],
            "high": [0.052, 0.0515],
            "low": [0.049, 0.05],
            "close": [0.05112, 0.05001],
            "volume": [1.5, 0.001],
        }
    )

    bars = candles_to_bars(
        frame,
        bar_type_for(str(instrument.id), HOUR),
        timeframe_ns=HOUR,
        price_precision=5,
        size_precision=3,
    )

    assert [(bar.ts_event, bar.ts_init) for bar in bars] == [(HOUR, HOUR), (2 * HOUR, 2 * HOUR)]
    assert [str(bar.close) for bar in bars] == ["0.05112", "0.05001"]
    assert [str(bar.volume) for bar in bars] == ["1.500", "0.001"]
    assert (instrument.base_currency.code, instrument.quote_currency.code) == ("ETH", "BTC")
    assert str(instrument.id) == "ETH-BTC.SIM"
    assert size_precision_cap(spec) == 8
