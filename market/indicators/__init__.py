"""Incremental technical indicators that match pandas-ta's batch values after warm-up.

Each indicator folds in one closed candle at a time, in O(1) of the history length (a window
indicator keeps a fixed-length ring; BBANDS, CCI and Stochastic scan that window). The
arithmetic is one compiled engine (`kernel`, numba, no fast-math); the classes here describe
each indicator and its state (`program`). State lives in the instance, one per symbol and
timeframe, kept by the caller (a Bytewax step, a backtest, the API), or in
`market.indicator_book.IndicatorBook`, which folds batches of candles of many series in one
call; both pickle, so Bytewax can snapshot them (with a format number: state of another
layout raises `IndicatorStateError`).

API:

    ind = build_indicator("macd", {"fast": 12, "slow": 26, "signal": 9})  # or MACD(fast=12, ...)
    ind.update(ts_ns, open, high, low, close, volume)   # ts_ns: bucket start, int ns UTC
    ind.values()    # {"macd_12_26_9.macd": ..., ".signal": ..., ".hist": ...}, NaN in warm-up
    ind.current()   # the same numbers as a tuple, in `OUTPUTS` order
    ind.warmup      # candles needed before every output is a number

    s = IndicatorSet.parse("sma:20,rsi:14,macd:12:26:9")   # or IndicatorSet(DEFAULT_INDICATORS)
    s.update(ts_ns, open, high, low, close, volume)
    s.values()      # one flat {storage name: value} dict for the `indicators` table

Storage names: the registry name, then every parameter value (defaults included) joined by
`_` (`sma_20`, `rsi_14`, `bbands_20_2`, `obv`); an indicator with several outputs appends
`.output` (`macd_12_26_9.hist`, `bbands_20_2.upper`, `stoch_14_3_3.k`). A float parameter may
hold a dot (`bbands_20_2.5.upper`): the output name is what follows the last dot.

Spec strings (`parse_indicators`): comma-separated `name:value:value...`, values in declared
parameter order, trailing ones defaulting. `INDICATORS` maps names to classes; each class's
`PARAMS` gives every parameter's name, type, default, bounds and description; bad names, unknown
or out-of-range parameters raise `IndicatorConfigError` (a `ValueError`) saying which.

Definitions follow pandas-ta 0.4.71b0 with its defaults (talib off), read from its source:
EMA seeded with the SMA of its first `length` inputs (`presma=True`) then `adjust=False`; RSI
and ATR smoothed with Wilder's RMA (ATR seeded with an SMA, RSI with its first change); sample
standard deviation in BBANDS; daily VWAP anchored at 00:00 UTC. Two deliberate differences: RSI
stays NaN for its first `length` candles, and CCI is Lambert's formula because pandas-ta's
`cci` misplaces a parenthesis. Where pandas would divide by zero (flat window, no volume),
outputs are NaN rather than infinite. Defaults of the classes are pandas-ta's defaults.

Corrections: `update` takes each closed candle once, in time order. To apply an amended
latest candle, restore the state pickled before it and update again.
"""

from market.indicators.base import (
    STATE_FORMAT,
    CandleOrderError,
    Indicator,
    IndicatorConfigError,
    IndicatorError,
    IndicatorStateError,
    Param,
    check_format,
)
from market.indicators.indicator_set import IndicatorSet
from market.indicators.momentum import CCI, MACD, ROC, RSI, Stoch
from market.indicators.overlap import EMA, SMA, WMA
from market.indicators.registry import (
    DEFAULT_INDICATORS,
    DEFAULT_INDICATORS_TEXT,
    INDICATORS,
    IndicatorSpec,
    build_indicator,
    indicator_class,
    indicator_spec,
    parse_indicators,
)
from market.indicators.volatility import ATR, BBands
from market.indicators.volume import OBV, VWAP

__all__ = [
    "ATR",
    "CCI",
    "DEFAULT_INDICATORS",
    "DEFAULT_INDICATORS_TEXT",
    "EMA",
    "INDICATORS",
    "MACD",
    "OBV",
    "ROC",
    "RSI",
    "SMA",
    "STATE_FORMAT",
    "VWAP",
    "WMA",
    "BBands",
    "CandleOrderError",
    "Indicator",
    "IndicatorConfigError",
    "IndicatorError",
    "IndicatorSet",
    "IndicatorSpec",
    "IndicatorStateError",
    "Param",
    "Stoch",
    "build_indicator",
    "check_format",
    "indicator_class",
    "indicator_spec",
    "parse_indicators",
]
