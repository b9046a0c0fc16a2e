"""Importing trade files: every format gives the candles of a batch aggregation of its
trades, whatever the compression, the order of the files, the runs they are split over, or
repeats."""

from __future__ import annotations

from pathlib import Path

import pytest

import flows.trade_import
from flows.files.errors import MostlyBadError
from flows.files.reader import ReadOptions
from market.indicators import DEFAULT_INDICATORS
from market.messages import Trade
from tests.flows.files.layouts import (
    T2025,
    S,
    binance_aggtrades,
    binance_trades,
    generic_trades_frame,
    sample_trades,
    tardis_trades,
    write,
)
from tests.flows.imports import (
    TIMEFRAMES,
    import_files,
    stored_candles,
    stored_indicators,
)
from tests.market.batch_reference import batch_candles

TRADES = sample_trades(1500)


def expected(trades: list[Trade]) -> dict:
    return {(tf, ts): c for (_, tf, ts), c in batch_candles(trades, TIMEFRAMES, 0).items()}


def _generic_csv(path: Path, trades: list[Trade], compression: str) -> Path:
    frame = generic_trades_frame(trades)
    return write(path, frame.write_csv(), compression)


CASES = {
    "binance spot trades, ms": lambda p, c: write(p, binance_trades(TRADES), c),
    "binance futures trades, header": lambda p, c: write(
        p, binance_trades(TRADES, spot=False, header=True), c),
    "binance spot aggTrades": lambda p, c: write(p, binance_aggtrades(TRADES), c),
    "binance futures aggTrades, header": lambda p, c: write(
        p, binance_aggtrades(TRADES, spot=False, header=True), c),
    "tardis trades": lambda p, c: write(p, tardis_trades(TRADES), c),
    "generic csv": lambda p, c: _generic_csv(p, TRADES, c),
}


@pytest.mark.parametrize("compression", ["none", "gzip", "zip"])
@pytest.mark.parametrize("case", list(CASES))
def test_each_format_imports_into_the_candles_of_a_batch_aggregation(
    case: str, compression: str, tmp_path: Path
) -> None:
    path = CASES[case](tmp_path / "BTCUSDT-data.csv", compression)
    options = ReadOptions(symbol="BTC-USDT", columns={"ts": "When", "price": "Px",
                                                       "side": "Aggressor", "id": "Ref"}
                          if case == "generic csv" else {})
    report = import_files([path], tmp_path / "data", options=options)
    assert report.trades_read == len(TRADES) and report.bad_rows.total == 0
    assert stored_candles(tmp_path / "data") == expected(TRADES)


def test_microsecond_spot_files_from_2025_read_to_the_same_candles(tmp_path: Path) -> None:
    trades = sample_trades(800, start_ns=T2025, unit_ns=1000)
    path = write(tmp_path / "BTCUSDT-trades-2025-03-01.csv", binance_trades(trades,
                                                                          unit_ns=1000), "zip")
    import_files([path], tmp_path / "data")
    assert stored_candles(tmp_path / "data") == expected(trades)


def test_tardis_rows_without_ids_and_parquet_files_import_too(tmp_path: Path) -> None:
    csv = write(tmp_path / "tardis.csv", tardis_trades(TRADES, ids=False), "gzip")
    import_files([csv], tmp_path / "a")
    assert stored_candles(tmp_path / "a") == expected(TRADES)
    parquet = tmp_path / "trades.parquet"
    generic_trades_frame(TRADES).write_parquet(parquet)
    options = ReadOptions(symbol="BTC-USDT", columns={"ts": "When", "price": "Px"})
    import_files([parquet], tmp_path / "b", options=options)
    assert stored_candles(tmp_path / "b") == expected(TRADES)


def _split_mid_minute(trades: list[Trade]) -> int:
    """The index of the first trade past midnight plus 90 s: a minute split in two."""
    midnight = (trades[0].ts // (86400 * S) + 1) * 86400 * S
    return next(i for i, t in enumerate(trades) if t.ts >= midnight + 90 * S + S // 2)


@pytest.mark.parametrize("order", ["one run", "earlier first", "later first"])
def test_split_files_give_the_candles_and_indicators_of_one_file_in_any_order_and_runs(
    order: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trades = sample_trades(3000)  # 23:50 to about 00:10: a day and a minute split
    cut = _split_mid_minute(trades)
    whole = write(tmp_path / "whole.csv", binance_trades(trades))
    early = write(tmp_path / "early.csv", binance_trades(trades[:cut]), "gzip")
    late = write(tmp_path / "late.csv", binance_trades(trades[cut:]), "zip")
    import_files([whole], tmp_path / "one", indicators=DEFAULT_INDICATORS)
    monkeypatch.setattr(flows.trade_import, "WRITE_CANDLES", 97)  # and in many pieces
    split = tmp_path / "split"
    if order == "one run":
        import_files([late, early], split, indicators=DEFAULT_INDICATORS)
    else:
        first, second = (early, late) if order == "earlier first" else (late, early)
        import_files([first], split, indicators=DEFAULT_INDICATORS)
        import_files([second], split, indicators=DEFAULT_INDICATORS)
    assert stored_candles(split) == stored_candles(tmp_path / "one") == expected(trades)
    indicators = stored_indicators(split)
    assert indicators == stored_indicators(tmp_path / "one")
    assert ("1s", trades[-1].ts // S * S, "sma_20") in indicators


def test_importing_again_or_an_overlapping_file_changes_nothing(tmp_path: Path) -> None:
    month = write(tmp_path / "month.csv", binance_trades(TRADES), "zip")
    data = tmp_path / "data"
    import_files([month], data, indicators=DEFAULT_INDICATORS)
    before = stored_candles(data), stored_indicators(data)
    again = import_files([month], data, indicators=DEFAULT_INDICATORS)
    assert (again.trades_new, again.duplicates) == (0, len(TRADES))
    day = write(tmp_path / "day.csv", binance_trades(TRADES[200:900]))
    overlap = import_files([day, month], data, indicators=DEFAULT_INDICATORS)
    assert (overlap.trades_new, overlap.duplicates) == (0, len(TRADES) + 700)
    assert (stored_candles(data), stored_indicators(data)) == before


def test_bad_rows_are_counted_with_their_line_and_reason_and_the_rest_imports(
    tmp_path: Path,
) -> None:
    lines = binance_trades(TRADES[:20]).splitlines()
    lines[2] = "3000000002,abc,0.1,1.0,1709337000400,True,True"
    lines[5] = ""
    lines[7] = "3000000007,62000.00000000,0.1"
    lines[9] = "3000000009,nan,0.1,1.0,1709337001000,True,True"
    lines[11] = "3000000011,62000.00000000,0.1,1.0,1709337001000,maybe,True"
    lines[13] = "3000000013,62000.00000000,-0.1,1.0,1709337001000,True,True"
    path = write(tmp_path / "trades.csv", "\n".join(lines) + "\n")
    report = import_files([path], tmp_path / "data")
    bad = report.bad_rows
    assert [(row.line, row.reason.split(":")[0]) for row in bad.shown] == [
        (3, "the price is missing or not a number"),
        (8, "the time is missing or is not a time"),
        (10, "the price must be finite and > 0, got NaN"),
        (12, "the buyer-maker flag is not true or false"),
        (14, "the size must be finite and >= 0, got -0.1"),
    ]
    assert bad.total == 5 and bad.files[str(path)].rows == 19
    good = [t for i, t in enumerate(TRADES[:20]) if i not in (2, 5, 7, 9, 11, 13)]
    assert stored_candles(tmp_path / "data") == expected(good)


def test_a_mostly_bad_file_stops_the_import_before_anything_is_stored(tmp_path: Path) -> None:
    good = write(tmp_path / "good.csv", binance_trades(TRADES))
    lines = binance_trades(TRADES[:100]).splitlines()
    lines[30:] = [line.replace(".", "x", 1) for line in lines[30:]]  # the prices
    mostly_bad = write(tmp_path / "mostly-bad.csv", "\n".join(lines) + "\n")
    data = tmp_path / "data"
    with pytest.raises(MostlyBadError, match=r"mostly-bad.csv: 70 of its first 100 rows are bad"):
        import_files([good, mostly_bad], data)
    assert stored_candles(data) == {}
    assert not list((data / "imports").rglob("*.parquet"))
