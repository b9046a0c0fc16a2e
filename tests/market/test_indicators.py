"""Incremental indicators: parity with pandas-ta's batch results, warm-up, pickling, errors."""

from __future__ import annotations

import inspect
import math
import pickle
from typing import Any

import numpy as np
import pandas as pd
import pandas_ta as ta
import pytest

from market.indicators import (
    CCI,
    DEFAULT_INDICATORS,
    INDICATORS,
    SMA,
    VWAP,
    CandleOrderError,
    IndicatorConfigError,
    IndicatorSet,
    IndicatorSpec,
    Stoch,
    build_indicator,
    parse_indicators,
)

CANDLES = 5_000
#: 2024-01-01 21:00 UTC: 5,000 one-minute candles reach into 2024-01-05, so VWAP resets 4 times.
START_NS = 1_704_142_800 * 1_000_000_000
MINUTE_NS = 60 * 1_000_000_000
RTOL = 1e-9

#: Non-default parameters, including edge paths (smooth_k=1, roc:1, cci:5); not
#: sma:1, which pandas-ta cannot compute (its convolution slice comes out empty).
OTHER_INDICATORS = parse_indicators(
    "sma:3,ema:5,wma:7,rsi:3,macd:5:35:5,bbands:10:1.5,atr:3,stoch:5:2:1,roc:1,cci:5"
)


def _near_zero_floor(key: str) -> float:
    """Absolute tolerance besides the relative one: zero except for CCI.

    CCI's numerator, typical price minus its SMA, is a difference of nearly equal prices: where
    the two are equal CCI is zero but carries the rounding of price-sized numbers (1e-14)
    divided by a small mean deviation, about 1e-10. The floor is RTOL times CCI's usual
    magnitude, 100.
    """
    return RTOL * 100.0 if key.startswith("cci_") else 0.0


def _random_walk(n: int, seed: int) -> pd.DataFrame:
    """1-minute OHLCV on a 0.01 tick, with 3% of candles flat (no price change at all)."""
    rng = np.random.default_rng(seed)
    rows = []
    prev = 100.0
    for _ in range(n):
        if rng.random() < 0.03:
            rows.append((prev, prev, prev, prev))
            continue
        close = round(prev * math.exp(rng.normal(0.0, 0.0008)), 2)
        high = round(max(prev, close) + abs(rng.normal(0.0, 0.0004)) * prev, 2)
        low = round(min(prev, close) - abs(rng.normal(0.0, 0.0004)) * prev, 2)
        rows.append((prev, high, low, close))
        prev = close
    frame = pd.DataFrame(rows, columns=["open", "high", "low", "close"])
    frame["volume"] = np.round(rng.lognormal(2.0, 1.0, n), 4) + 0.0001
    frame["ts"] = START_NS + np.arange(n, dtype=np.int64) * MINUTE_NS
    # pandas-ta's VWAP anchors on a naive DatetimeIndex: its days are UTC days here.
    frame.index = pd.to_datetime(frame["ts"], unit="ns")
    return frame


def _exact_rolling_std(close: pd.Series, length: int) -> pd.Series:
    """Sample standard deviation of each window, summed exactly."""
    values = close.tolist()
    out = [math.nan] * len(values)
    for i in range(length - 1, len(values)):
        window = values[i - length + 1 : i + 1]
        mean = math.fsum(window) / length
        out[i] = math.sqrt(math.fsum((x - mean) ** 2 for x in window) / (length - 1))
    return pd.Series(out, index=close.index)


def _run(specs: tuple[IndicatorSpec, ...], frame: pd.DataFrame) -> dict[str, np.ndarray]:
    indicators = IndicatorSet(specs)
    rows = []
    columns = ("ts", "open", "high", "low", "close", "volume")
    for ts, o, h, lo, c, v in zip(*(frame[col].tolist() for col in columns), strict=True):
        indicators.update(ts, o, h, lo, c, v)
        rows.append(list(indicators.values().values()))
    table = np.array(rows)
    return {key: table[:, i] for i, key in enumerate(indicators.keys)}


def _reference(spec: IndicatorSpec, frame: pd.DataFrame) -> dict[str, pd.Series]:
    """pandas-ta's batch result for `spec`, keyed by our storage names."""
    p: dict[str, Any] = dict(spec.params)
    h, lo, c, v = frame["high"], frame["low"], frame["close"], frame["volume"]
    name = spec.name
    match spec.kind:
        case "sma" | "ema" | "wma" | "rsi" | "roc":
            return {name: getattr(ta, spec.kind)(c, p["length"])}
        case "atr":
            return {name: ta.atr(h, lo, c, p["length"])}
        case "obv":
            return {name: ta.obv(c, v)}
        case "vwap":
            return {name: ta.vwap(h, lo, c, v, anchor="D")}
        case "cci":
            # ta.cci computes tp - sma / (c * mad); see test_pandas_ta_cci_misplaces_parenthesis.
            tp = ta.hlc3(h, lo, c)
            return {name: (tp - ta.sma(tp, p["length"])) / (0.015 * ta.mad(tp, p["length"]))}
        case "macd":
            df = ta.macd(c, p["fast"], p["slow"], p["signal"])
            cols = ("MACD", "MACDs", "MACDh")
            props = f"_{p['fast']}_{p['slow']}_{p['signal']}"
            return {
                f"{name}.{out}": df[col + props]
                for out, col in zip(("macd", "signal", "hist"), cols, strict=True)
            }
        case "bbands":
            df = ta.bbands(c, p["length"], p["std"], p["std"])
            middle = df.iloc[:, 1]
            # BBB and BBP are pandas-ta's expressions over an exact rolling std: pandas' own
            # drifts past the tolerance in quiet windows (test_pandas_rolling_std_drifts...).
            width = p["std"] * _exact_rolling_std(c, p["length"])
            lower, upper = middle - width, middle + width
            return {
                f"{name}.lower": df.iloc[:, 0],
                f"{name}.middle": middle,
                f"{name}.upper": df.iloc[:, 2],
                f"{name}.bandwidth": 100 * (upper - lower) / middle,
                f"{name}.percent": (c - lower) / (upper - lower),
            }
        case "stoch":
            df = ta.stoch(h, lo, c, p["k"], p["d"], p["smooth_k"])
            return {f"{name}.k": df.iloc[:, 0], f"{name}.d": df.iloc[:, 1]}
    raise AssertionError(f"no pandas-ta reference for {spec.kind}")


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return _random_walk(CANDLES, seed=7)


@pytest.fixture(scope="module")
def ours(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    return _run(DEFAULT_INDICATORS + OTHER_INDICATORS, frame)


@pytest.fixture(scope="module")
def reference(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for spec in DEFAULT_INDICATORS + OTHER_INDICATORS:
        out.update({k: s.to_numpy(dtype=float) for k, s in _reference(spec, frame).items()})
    return out


ALL_INDICATORS = [spec.build() for spec in DEFAULT_INDICATORS + OTHER_INDICATORS]


@pytest.mark.parametrize("key", [key for ind in ALL_INDICATORS for key in ind.keys])
def test_matches_pandas_ta_after_warmup(
    key: str, ours: dict[str, np.ndarray], reference: dict[str, np.ndarray]
) -> None:
    mine, theirs = ours[key], reference[key]
    numbers = ~np.isnan(mine)
    first = int(np.argmax(numbers))
    if key.startswith("rsi_"):
        # pandas-ta prints RSI from the second candle; ours waits for `length` changes.
        assert np.isnan(theirs[:1]).all() and not np.isnan(theirs[1:]).any()
    else:
        assert int(np.argmax(~np.isnan(theirs))) == first
    assert numbers[first:].all() and not np.isnan(theirs[first:]).any()
    floor = _near_zero_floor(key)
    error = np.abs(mine[first:] - theirs[first:])
    allowed = np.maximum(RTOL * np.abs(theirs[first:]), floor)
    worst = int(np.argmax(error - allowed))
    assert error[worst] <= allowed[worst], (
        f"{key} at candle {first + worst}: ours {mine[first + worst]!r}, "
        f"pandas-ta {theirs[first + worst]!r}"
    )


def test_outputs_are_nan_during_warmup_and_numbers_after(ours: dict[str, np.ndarray]) -> None:
    for indicator in ALL_INDICATORS:
        table = np.column_stack([ours[key] for key in indicator.keys])
        some_nan = np.isnan(table).any(axis=1)
        assert some_nan[: indicator.warmup - 1].all(), indicator.name
        assert not some_nan[indicator.warmup - 1 :].any(), indicator.name


def test_warmup_of_sma_is_its_length() -> None:
    sma = SMA(length=3)
    seen = []
    for i, close in enumerate((1.0, 2.0, 4.0, 8.0)):
        sma.update(START_NS + i * MINUTE_NS, close, close, close, close, 1.0)
        seen.append(sma.values()["sma_3"])
    assert math.isnan(seen[0]) and math.isnan(seen[1])
    assert seen[2:] == [7.0 / 3.0, 14.0 / 3.0]


def test_pickled_set_continues_exactly_like_the_original(frame: pd.DataFrame) -> None:
    original = IndicatorSet(DEFAULT_INDICATORS + OTHER_INDICATORS)
    columns = ("ts", "open", "high", "low", "close", "volume")
    candles = list(zip(*(frame[col].tolist() for col in columns), strict=True))
    for candle in candles[:2_500]:
        original.update(*candle)
    restored = pickle.loads(pickle.dumps(original))
    for candle in candles[2_500:3_000]:
        original.update(*candle)
        restored.update(*candle)
        a, b = original.values(), restored.values()
        assert a.keys() == b.keys()
        assert all(a[k] == b[k] or (math.isnan(a[k]) and math.isnan(b[k])) for k in a)


def test_vwap_restarts_at_midnight_utc() -> None:
    vwap = VWAP()
    midnight = 1_704_153_600 * 1_000_000_000  # 2024-01-02 00:00 UTC
    vwap.update(midnight - MINUTE_NS, 10.0, 12.0, 9.0, 12.0, 5.0)
    vwap.update(midnight, 20.0, 24.0, 18.0, 21.0, 2.0)
    assert vwap.values() == {"vwap": 21.0}


def test_flat_windows_give_zero_stochastic_and_nan_cci() -> None:
    stoch, cci = Stoch(k=2, d=1, smooth_k=1), CCI(length=2)
    for i in range(2):
        stoch.update(START_NS + i * MINUTE_NS, 5.0, 5.0, 5.0, 5.0, 1.0)
        cci.update(START_NS + i * MINUTE_NS, 5.0, 5.0, 5.0, 5.0, 1.0)
    assert stoch.values() == {"stoch_2_1_1.k": 0.0, "stoch_2_1_1.d": 0.0}
    assert math.isnan(cci.values()["cci_2"])


def test_cci_of_typical_prices_equal_but_for_rounding_is_nan() -> None:
    # (h + l + c) / 3 of these candles is 95.11 each time, give or take an ulp.
    cci = CCI(length=3)
    candles = [(95.18, 95.06, 95.09), (95.16, 95.03, 95.14), (95.17, 95.06, 95.10)]
    for i, (high, low, close) in enumerate(candles):
        cci.update(START_NS + i * MINUTE_NS, close, high, low, close, 1.0)
    assert math.isnan(cci.values()["cci_3"])


def test_default_set_storage_names() -> None:
    assert IndicatorSet(DEFAULT_INDICATORS).keys == (
        "sma_20", "ema_20", "wma_20", "rsi_14",
        "macd_12_26_9.macd", "macd_12_26_9.signal", "macd_12_26_9.hist",
        "bbands_20_2.lower", "bbands_20_2.middle", "bbands_20_2.upper",
        "bbands_20_2.bandwidth", "bbands_20_2.percent",
        "atr_14", "stoch_14_3_3.k", "stoch_14_3_3.d", "obv", "roc_10", "cci_20", "vwap",
    )  # fmt: skip


def test_defaults_cover_every_indicator_and_specs_round_trip() -> None:
    assert {spec.kind for spec in DEFAULT_INDICATORS} == set(INDICATORS)
    for spec in DEFAULT_INDICATORS + OTHER_INDICATORS:
        assert parse_indicators(str(spec)) == (spec,)
        assert spec.build().name == spec.name


def test_registry_describes_each_parameter_as_its_constructor_does() -> None:
    for name, cls in INDICATORS.items():
        assert name == cls.NAME == name.lower()
        signature = inspect.signature(cls.__init__)
        assert [p.name for p in cls.PARAMS] == list(signature.parameters)[1:]
        for param in cls.PARAMS:
            assert signature.parameters[param.name].default == param.default
            assert param.minimum <= param.default <= param.maximum
            assert isinstance(param.default, param.type)


def test_build_indicator_by_name_and_parameters() -> None:
    rsi = build_indicator("rsi", {"length": 7})
    assert rsi.name == "rsi_7" and rsi.warmup == 8
    assert build_indicator("macd").keys[2] == "macd_12_26_9.hist"


@pytest.mark.parametrize(
    ("kind", "params", "message"),
    [
        ("rsx", {}, "unknown indicator 'rsx'; valid names: sma, ema, wma, rsi,"),
        ("rsi", {"lenght": 14}, "rsi: unknown parameter 'lenght'; valid parameters: length"),
        ("rsi", {"length": 0}, "rsi: parameter 'length' must be between 1 and 10000, got 0"),
        ("rsi", {"length": 14.0}, "rsi: parameter 'length' expects an integer, got 14.0"),
        ("sma", {"length": True}, "sma: parameter 'length' expects int, got bool True"),
        ("bbands", {"std": "2"}, "bbands: parameter 'std' expects float, got str '2'"),
        ("obv", {"length": 3}, "obv: unknown parameter 'length'; valid parameters: none"),
        ("macd", {"fast": 26, "slow": 12}, "'fast' must be less than 'slow', got fast=26"),
    ],
)
def test_bad_indicator_or_parameter_is_rejected_with_its_name(
    kind: str, params: dict[str, object], message: str
) -> None:
    with pytest.raises(IndicatorConfigError) as caught:
        build_indicator(kind, params)
    assert message in str(caught.value)
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sma:20,RSI:14", "unknown indicator 'RSI'"),
        ("rsi:fourteen", "rsi: parameter 'length' expects int, got 'fourteen' in 'rsi:fourteen'"),
        ("rsi:14:3", "'rsi:14:3' has 2 values; expected at most 1 (rsi:length)"),
        ("sma:20,,rsi", "has an empty entry ''"),
        ("sma:20, sma:20", "indicator 'sma_20' is listed twice"),
        ("bbands:20:nan", "bbands: parameter 'std' must be between 0.1 and 10.0, got nan"),
    ],
)
def test_bad_spec_string_is_rejected(text: str, message: str) -> None:
    with pytest.raises(IndicatorConfigError) as caught:
        parse_indicators(text)
    assert message in str(caught.value)


def test_spec_string_defaults_trailing_parameters_and_ignores_spaces() -> None:
    assert [s.name for s in parse_indicators(" macd:8 , bbands , vwap ")] == [
        "macd_8_26_9", "bbands_5_2", "vwap",
    ]  # fmt: skip
    assert parse_indicators("") == ()


def test_constructor_checks_parameters_too() -> None:
    with pytest.raises(IndicatorConfigError, match="'length' must be between 1 and 10000"):
        SMA(length=0)


def test_candle_not_after_the_previous_is_rejected_and_changes_nothing() -> None:
    indicators = IndicatorSet.parse("sma:2")
    indicators.update(START_NS, 1.0, 1.0, 1.0, 1.0, 1.0)
    indicators.update(START_NS + MINUTE_NS, 3.0, 3.0, 3.0, 3.0, 1.0)
    with pytest.raises(CandleOrderError, match=f"ts={START_NS + MINUTE_NS} does not come after"):
        indicators.update(START_NS + MINUTE_NS, 5.0, 5.0, 5.0, 5.0, 1.0)
    assert indicators.values() == {"sma_2": 2.0}


def test_pandas_rolling_std_drifts_past_tolerance_where_ours_does_not(
    frame: pd.DataFrame,
) -> None:
    # pandas' rolling var updates one running state over the whole series; in quiet windows
    # its std is off by more than RTOL, so BBB and BBP are checked against an exact std.
    # When this fails after an upgrade, compare them with ta.bbands directly.
    exact = _exact_rolling_std(frame["close"], 10).to_numpy()[9:]
    bands = _run(parse_indicators("bbands:10:2"), frame)
    ours = (bands["bbands_10_2.upper"][9:] - bands["bbands_10_2.middle"][9:]) / 2
    theirs = ta.stdev(frame["close"], 10).to_numpy()[9:]
    assert np.max(np.abs(ours - exact) / exact) < 1e-11
    assert np.max(np.abs(theirs - exact) / exact) > RTOL


def test_pandas_ta_cci_misplaces_parenthesis(frame: pd.DataFrame) -> None:
    # When an upgrade of pandas-ta fixes this, compare CCI with ta.cci directly.
    h, lo, c = frame["high"], frame["low"], frame["close"]
    tp = ta.hlc3(h, lo, c)
    buggy = tp - ta.sma(tp, 20) / (0.015 * ta.mad(tp, 20))
    pd.testing.assert_series_equal(ta.cci(h, lo, c, 20), buggy, check_names=False)
