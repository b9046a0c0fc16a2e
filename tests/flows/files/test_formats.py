"""Telling a file's format: every documented layout, with and without its header row, and
errors (never guesses) when a file fits none or several."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.files.errors import FileImportError, FormatError
from flows.files.formats import check_file_name, detect_csv, detect_parquet, sample_rows
from tests.flows.files.layouts import (
    T2025,
    binance_aggtrades,
    binance_trades,
    sample_trades,
    tardis_trades,
)

HERE = Path("f.csv")
TRADES = sample_trades(6)


def detect(text: str, **kwargs: object) -> tuple[str, str, bool]:
    fmt = detect_csv(HERE, sample_rows(text.splitlines()), **kwargs)  # type: ignore[arg-type]  # test overrides: each a real keyword
    return fmt.name, fmt.label, fmt.has_header


@pytest.mark.parametrize(("text", "expected"), [
    (binance_trades(TRADES), ("binance-trades", "binance-trades (spot)", False)),
    (binance_trades(sample_trades(6, start_ns=T2025), unit_ns=1000),
     ("binance-trades", "binance-trades (spot)", False)),
    (binance_trades(TRADES, spot=False), ("binance-trades", "binance-trades (futures)", False)),
    (binance_trades(TRADES, spot=False, header=True),
     ("binance-trades", "binance-trades (futures)", True)),
    (binance_aggtrades(TRADES), ("binance-aggtrades", "binance-aggtrades (spot)", False)),
    (binance_aggtrades(TRADES, spot=False),
     ("binance-aggtrades", "binance-aggtrades (futures)", False)),
    (binance_aggtrades(TRADES, spot=False, header=True),
     ("binance-aggtrades", "binance-aggtrades (futures)", True)),
    (tardis_trades(TRADES), ("tardis-trades", "tardis-trades (trades)", True)),
    ("1709337600000,62000.1,62010.0,61990.5,62005.0,12.5,1709337659999,775000.0,310,6.0,"
     "372000.0,0\n", ("binance-klines", "binance-klines (spot or futures)", False)),
    ("time,price,amount\n1709337600,62000.5,0.01\n", ("trades", "trades", True)),
    ("Date,Open,High,Low,Close,Volume\n2024-03-01,1,2,0.5,1.5,10\n",
     ("candles", "candles", True)),
])
def test_each_layout_is_told_from_its_first_lines(
    text: str, expected: tuple[str, str, bool]
) -> None:
    assert detect(text) == expected


def test_a_headerless_file_that_fits_no_binance_layout_asks_for_a_header() -> None:
    with pytest.raises(FormatError, match="matches none of the Binance layouts"):
        detect("1709337600,62000.5,0.01\n")


def test_a_header_with_two_candidate_time_columns_is_ambiguous() -> None:
    with pytest.raises(FormatError, match="could each be ts; name one with --columns ts="):
        detect("time,timestamp,price,size\n1,1709337600,62000.5,0.01\n")


def test_columns_name_what_aliases_cannot_and_settle_an_ambiguity() -> None:
    text = "time,timestamp,price,size\n1,1709337600,62000.5,0.01\n"
    fmt = detect_csv(HERE, sample_rows(text.splitlines()), columns={"ts": "timestamp"})
    assert (fmt.name, fmt.fields["ts"], fmt.shapes["timestamp"]) == ("trades", "timestamp", "i")


def test_a_file_that_could_hold_trades_or_candles_asks_for_the_format() -> None:
    text = "ts,price,amount,open,high,low,close,vol\n1,2,3,4,5,6,7,8\n"
    with pytest.raises(FormatError, match="pass --format trades or --format candles"):
        detect(text)
    assert detect(text, requested="candles")[0] == "candles"


def test_a_requested_format_the_file_does_not_have_is_refused() -> None:
    with pytest.raises(FormatError, match="does not look like binance-aggtrades"):
        detect(binance_trades(TRADES), requested="binance-aggtrades")
    with pytest.raises(FormatError, match="is not that of binance-klines"):
        detect(tardis_trades(TRADES), requested="binance-klines")


def test_missing_columns_are_named() -> None:
    with pytest.raises(FormatError, match="no column for size of trades"):
        detect("ts,price,side\n1,2,buy\n")


def test_parquet_columns_are_found_like_a_header() -> None:
    fmt = detect_parquet(Path("f.parquet"), ["When", "Px", "Amount"],
                         columns={"ts": "When", "price": "Px"})
    assert (fmt.name, dict(fmt.fields)) == ("trades", {"ts": "When", "price": "Px",
                                                       "size": "Amount"})
    with pytest.raises(FormatError, match="is never binance-trades"):
        detect_parquet(Path("f.parquet"), ["a"], requested="binance-trades")


def test_binance_file_names_must_agree_with_the_content_and_the_symbol() -> None:
    fmt = detect_csv(HERE, sample_rows(binance_trades(TRADES).splitlines()))
    check_file_name(Path("BTCUSDT-trades-2024-03-01.csv"), fmt, "BTC-USDT")
    with pytest.raises(FormatError, match="its name says binance-aggtrades"):
        check_file_name(Path("BTCUSDT-aggTrades-2024-03.zip"), fmt, "BTC-USDT")
    with pytest.raises(FileImportError, match="its name says ETHUSDT"):
        check_file_name(Path("ETHUSDT-trades-2024-03.zip"), fmt, "BTC-USDT")
