"""Importing candle files: Binance klines (either header, ms or µs) and generic candle files
are stored as closed candles, with their indicators, whatever the order of the files."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from db.sqlite import SqliteStore
from flows.candle_import import CandleImportReport, import_candles
from flows.files.errors import FormatError
from flows.files.reader import ReadOptions, inspect_file
from market.indicators import DEFAULT_INDICATORS
from market.messages import Candle
from market.timeframes import Timeframe, parse_timeframes
from tests.flows.files.layouts import T2025, S, binance_klines, write
from tests.flows.imports import MARKET, stored_candles, stored_indicators
from tests.walks import minute_walk

ONE_MINUTE = parse_timeframes("1m")
CANDLES = [  # prices on a cent tick, as an exchange prints them
    msgspec.structs.replace(c, exchange="binance", high=round(c.high, 2), low=round(c.low, 2),
                            trades=i % 7 + 1, vwap=round(c.close - 0.01, 2))
    for i, c in enumerate(minute_walk(600))
]


def import_candle_files(files: list[Path], data: Path, **options: object) -> CandleImportReport:
    read = ReadOptions(symbol=MARKET.symbol, **options)  # type: ignore[arg-type]  # test overrides: each a real field
    sources = [inspect_file(path, read) for path in files]
    store = SqliteStore(data / "candlegraph.sqlite")
    try:
        return import_candles(sources, store, market=MARKET, indicators=DEFAULT_INDICATORS,
                              work_dir=data / "work")
    finally:
        store.close()


def as_read(candles: list[Candle]) -> dict[tuple[str, int], Candle]:
    """The klines as stored: VWAP is their quote volume over their volume."""
    return {
        (c.timeframe, c.ts): msgspec.structs.replace(
            c, vwap=float(repr(c.vwap * c.volume)) / c.volume  # type: ignore[operator]  # these candles all have a vwap
        )
        for c in candles
    }


@pytest.mark.parametrize(("header", "compression", "start"), [
    (False, "zip", None), (True, "gzip", None), (False, "none", T2025),
])
def test_binance_klines_are_stored_as_closed_candles_with_count_and_vwap(
    header: bool, compression: str, start: int | None, tmp_path: Path
) -> None:
    candles = CANDLES if start is None else [
        msgspec.structs.replace(c, ts=c.ts - CANDLES[0].ts + start) for c in CANDLES
    ]
    unit = 1000 if start else 1_000_000
    path = write(tmp_path / "BTCUSDT-1m-2024-03.csv",
                 binance_klines(candles, header=header, unit_ns=unit), compression)
    report = import_candle_files([path], tmp_path / "data")
    assert (report.candles, report.timeframes) == (600, ["1m"])
    assert stored_candles(tmp_path / "data", ONE_MINUTE) == as_read(candles)
    assert len({k[1] for k in stored_indicators(tmp_path / "data", ONE_MINUTE)}) > 500


def test_the_timeframe_of_klines_comes_from_their_open_and_close_times(tmp_path: Path) -> None:
    hourly = [msgspec.structs.replace(c, timeframe="1h", ts=CANDLES[0].ts // (3600 * S)
                                      * 3600 * S + i * 3600 * S)
              for i, c in enumerate(CANDLES[:50])]
    path = write(tmp_path / "BTCUSDT-1h-2024.csv", binance_klines(hourly, width_ns=3600 * S))
    assert inspect_file(path, ReadOptions(symbol="BTC-USDT")).timeframe == Timeframe.parse("1h")
    with pytest.raises(FormatError, match="holds 1h candles, not the 1m asked for"):
        inspect_file(path, ReadOptions(symbol="BTC-USDT", timeframe=Timeframe.parse("1m")))


def test_generic_candles_without_count_or_vwap_store_neither(tmp_path: Path) -> None:
    text = "Date,Open,High,Low,Close,Volume\n" + "".join(
        f"{c.ts // S},{c.open},{c.high},{c.low},{c.close},{c.volume}\n" for c in CANDLES
    )
    path = write(tmp_path / "candles.csv", text)
    with pytest.raises(FormatError, match="say their timeframe with --timeframe"):
        inspect_file(path, ReadOptions(symbol="BTC-USDT"))
    import_candle_files([path], tmp_path / "data", timeframe=Timeframe.parse("1m"))
    assert stored_candles(tmp_path / "data", ONE_MINUTE) == {
        (c.timeframe, c.ts): msgspec.structs.replace(c, trades=None, vwap=None) for c in CANDLES
    }


def test_candle_files_in_either_order_store_the_same_candles_and_indicators(
    tmp_path: Path,
) -> None:
    early = write(tmp_path / "early.csv", binance_klines(CANDLES[:350]))
    late = write(tmp_path / "late.csv", binance_klines(CANDLES[250:]), "gzip")
    import_candle_files([early, late], tmp_path / "one run")
    import_candle_files([late], tmp_path / "later first")
    import_candle_files([early], tmp_path / "later first")
    one = stored_candles(tmp_path / "one run", ONE_MINUTE)
    assert one == stored_candles(tmp_path / "later first", ONE_MINUTE) == as_read(CANDLES)
    assert stored_indicators(tmp_path / "one run", ONE_MINUTE) == stored_indicators(
        tmp_path / "later first", ONE_MINUTE
    )
