"""Indicator outputs pinned to the last bit.

`indicator_bits.json` holds, for long random candle walks, a SHA-256 of every output column of
every indicator in many parameter shapes, and a few sampled values, as the pure-Python engine
computed them before the engine was compiled; the engine must still give exactly those bits.
The walks cross the refresh points of the rolling sums many times (including right after the
price scale jumps a thousandfold, where a running sum would drift), hold flat runs, zero
volumes and UTC midnights, and one starts before 1970. Besides the plain fold, the digests
cover a series warmed from its history (`IndicatorBook`) and fed in uneven batches
interleaved with another series; pickling mid-stream must continue bit for bit too.

The walks use only `random.Random.random`/`randrange` and integer arithmetic, and indicators
only + - * / and sqrt, so the bits do not depend on the platform. Record again (only when a
change of values is intended) with `python -m tests.market.test_indicator_bits`.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import random
import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from market.candle_columns import CandleColumns
from market.indicator_book import IndicatorBook
from market.indicators import (
    DEFAULT_INDICATORS,
    SMA,
    IndicatorSet,
    IndicatorStateError,
    parse_indicators,
)
from market.messages import Candle

GOLDEN = Path(__file__).with_name("indicator_bits.json")
S = 1_000_000_000
DAY = 86_400 * S

#: Every indicator in edge and common shapes (length 1 where allowed, long windows, float
#: band widths), besides the default set.
SHAPES = parse_indicators(
    "sma:1,sma:2,sma:3,sma:50,ema:1,ema:2,ema:5,ema:50,wma:1,wma:2,wma:7,wma:50,"
    "rsi:1,rsi:2,rsi:3,rsi:30,macd:1:2:1,macd:5:35:5,macd:3:10:16,"
    "bbands:2:0.1,bbands:10:1.5,bbands:50:3.7,atr:1,atr:3,atr:30,"
    "stoch:1:1:1,stoch:5:2:1,stoch:14:1:5,stoch:3:4:2,roc:1,roc:3,roc:40,cci:2,cci:5,cci:50"
)
SPECS = DEFAULT_INDICATORS + SHAPES

Row = tuple[int, float, float, float, float, float]


def walk(n: int, seed: int, *, start_ns: int, step_ns: int, jumps: bool = False) -> list[Row]:
    """`n` candles (ts, open, high, low, close, volume) on a price grid: 4 % flat candles,
    3 % without volume, 1 % followed by a gap of up to a day; with `jumps`, the price scale
    jumps a thousandfold up or down every 700 candles or so."""
    rng = random.Random(seed)
    ticks, unit = 1_000_000, 10_000  # price = ticks / unit
    rows: list[Row] = []
    ts = start_ns
    for i in range(n):
        if jumps and i % 700 == 350:
            ticks, unit = (ticks * 1000, unit) if (i // 700) % 2 == 0 else (ticks, unit * 1000)
        if rng.random() < 0.04:
            o = h = lo = c = ticks
        else:
            o = ticks
            c = max(1, ticks + rng.randrange(-ticks // 500 - 1, ticks // 500 + 2))
            h = max(o, c) + rng.randrange(0, ticks // 1000 + 2)
            lo = max(1, min(o, c) - rng.randrange(0, ticks // 1000 + 2))
            ticks = c
        volume = 0.0 if rng.random() < 0.03 else rng.randrange(1, 10**7) / 10**4
        rows.append((ts, o / unit, h / unit, lo / unit, c / unit, volume))
        ts += step_ns * (1 + (rng.randrange(1, 86_400) if rng.random() < 0.01 else 0))
    return rows


#: name: (candles, seed, first ts, step, price jumps)
WALKS = {
    "minutes": (6_000, 1, 1_704_142_800 * S, 60 * S, False),
    "jumps": (5_000, 2, 1_704_067_200 * S, 60 * S, True),
    "seconds_before_1970": (4_000, 3, -DAY // 2, S, False),
}


def _walk(name: str) -> list[Row]:
    n, seed, start, step, jumps = WALKS[name]
    return walk(n, seed, start_ns=start, step_ns=step, jumps=jumps)


def _plain(rows: list[Row]) -> np.ndarray:
    """Every output after every candle, one candle at a time through `IndicatorSet`."""
    indicators = IndicatorSet(SPECS)
    out = []
    for row in rows:
        indicators.update(*row)
        out.append(list(indicators.values().values()))
    return np.array(out, np.float64)


def _warmed(rows: list[Row]) -> np.ndarray:
    """The outputs of the candles after the first 2,500, from an `IndicatorBook` that warms
    the series from those 2,500 as its history, fed in batches of 1 to 700 candles
    interleaved with a second series; NaN where the book leaves a value out."""
    book = IndicatorBook(SPECS)
    markets = [("x", "A-B"), ("x", "C-D")]
    history = [Candle("x", "A-B", "1m", *row, None, None, True) for row in rows[:2_500]]

    def stored(exchange: str, symbol: str, timeframe: str, before_ns: int) -> list[Candle]:
        return [c for c in history if c.ts < before_ns] if symbol == "A-B" else []

    live = rows[2_500:]
    rng = random.Random(9)
    out: list[list[float]] = []
    first = 0
    while first < len(live):
        batch = live[first:first + rng.randrange(1, 700)]
        first += len(batch)
        # The other market's candles (the same ones, started cold) go in between.
        mixed = [(m, row) for row in batch for m in (0, 1)]
        columns = _columns(markets, mixed)
        for (m, _), values in zip(mixed, book.update(columns, stored), strict=True):
            if m == 0:
                out.append([values.get(key, np.nan) for key in book.keys])
    return np.array(out, np.float64)


def _columns(markets: list[tuple[str, str]], rows: list[tuple[int, Row]]) -> CandleColumns:
    def col(i: int, dtype: type) -> np.ndarray:
        return np.array([row[i] for _, row in rows], dtype)

    return CandleColumns(
        markets, ["1m"], np.array([m for m, _ in rows], np.int64), np.zeros(len(rows), np.int64),
        col(0, np.int64), col(1, np.float64), col(2, np.float64), col(3, np.float64),
        col(4, np.float64), col(5, np.float64), np.ones(len(rows), np.int64),
        col(4, np.float64), np.ones(len(rows), np.bool_),
    )


def _digest(column: np.ndarray) -> str:
    """SHA-256 of the column's float64 bits, every NaN counted as one value."""
    canonical = np.where(np.isnan(column), np.nan, column).astype("<f8")
    return hashlib.sha256(canonical.tobytes()).hexdigest()


def _samples(column: np.ndarray) -> dict[str, str]:
    rows = (len(column) // 3, 2 * len(column) // 3, len(column) - 1)
    return {str(i): float(column[i]).hex() for i in rows}


def _cases() -> Iterator[tuple[str, np.ndarray]]:
    for name in WALKS:
        rows = _walk(name)
        yield name, _plain(rows)
        yield f"{name}_warmed", _warmed(rows)


def _keys() -> tuple[str, ...]:
    return IndicatorSet(SPECS).keys


def record() -> None:
    golden = {
        case: {
            key: {"sha256": _digest(table[:, i]), "samples": _samples(table[:, i])}
            for i, key in enumerate(_keys())
        }
        for case, table in _cases()
    }
    GOLDEN.write_text(json.dumps(golden, indent=0, sort_keys=True) + "\n")


@pytest.fixture(scope="module")
def golden() -> dict[str, dict[str, dict]]:
    return json.loads(GOLDEN.read_text())


@pytest.mark.parametrize("case", [f"{n}{w}" for n in WALKS for w in ("", "_warmed")])
def test_outputs_equal_the_recorded_bits(case: str, golden: dict) -> None:
    name = case.removesuffix("_warmed")
    rows = _walk(name)
    table = _warmed(rows) if case.endswith("_warmed") else _plain(rows)
    pinned = golden[case]
    assert set(pinned) == set(_keys())
    for i, key in enumerate(_keys()):
        column = table[:, i]
        for row, bits in pinned[key]["samples"].items():
            got = float(column[int(row)])
            assert struct.pack("<d", got) == struct.pack("<d", float.fromhex(bits)) or (
                got != got and bits == "nan"
            ), f"{case} {key} at candle {row}: {got!r}, recorded {float.fromhex(bits)!r}"
        assert _digest(column) == pinned[key]["sha256"], f"{case} {key} differs"


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and _digest(a.ravel()) == _digest(b.ravel())


def test_a_set_pickled_mid_stream_continues_bit_for_bit() -> None:
    rows = _walk("jumps")[:1_200]
    whole = _plain(rows)
    # Around the refresh points of windows of 1, 2, 3, 20 and 50 candles, and a jump (350).
    for cut in (1, 2, 3, 19, 20, 21, 49, 50, 51, 349, 350, 351, 1_000):
        indicators = IndicatorSet(SPECS)
        for row in rows[:cut]:
            indicators.update(*row)
        indicators = pickle.loads(pickle.dumps(indicators, protocol=pickle.HIGHEST_PROTOCOL))
        rest = []
        for row in rows[cut:]:
            indicators.update(*row)
            rest.append(list(indicators.values().values()))
        assert _same(np.array(rest), whole[cut:]), f"cut after {cut} candles"


def test_a_book_pickled_mid_stream_continues_bit_for_bit() -> None:
    rows = _walk("minutes")[:900]
    markets = [("x", "A-B"), ("x", "C-D")]
    mixed = [(m, row) for row in rows for m in (0, 1)]
    whole = IndicatorBook(SPECS).update(_columns(markets, mixed))
    for cut in (40, 101, 1_001):
        book = IndicatorBook(SPECS)
        book.update(_columns(markets, mixed[:cut]))
        book = pickle.loads(pickle.dumps(book, protocol=pickle.HIGHEST_PROTOCOL))
        rest = book.update(_columns(markets, mixed[cut:]))
        assert len(rest) == len(whole) - cut
        for got, expected in zip(rest, whole[cut:], strict=True):
            assert got.keys() == expected.keys()
            assert _same(np.array(list(got.values())), np.array(list(expected.values())))


@pytest.mark.parametrize("state", [IndicatorSet(SPECS), IndicatorBook(SPECS), SMA(length=3)],
                         ids=type)
def test_pickled_state_of_another_layout_is_refused(state: object) -> None:
    # What the pure-Python engine pickled carried no format (1).
    old = {k: v for k, v in state.__getstate__().items() if k != "format"}  # type: ignore[attr-defined]  # each parametrized state pickles
    blank = type(state).__new__(type(state))
    with pytest.raises(IndicatorStateError, match="state of format 1; this version reads"):
        blank.__setstate__(old)  # type: ignore[attr-defined]  # each parametrized state pickles


if __name__ == "__main__":
    record()
