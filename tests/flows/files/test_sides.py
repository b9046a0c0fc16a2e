"""A generic file's taker sides, in every spelling files use, read the same from CSV and from
Parquet (where a text column is read as a dictionary)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from flows.files.bad_rows import BadRows
from flows.files.reader import ReadOptions, inspect_file

SPELLINGS = ["buy", "BUY", "Buy", "b", "B", "sell", "SELL", "Sell", "s", "S", "taker", None]
#: 0 buy, 1 sell, 2 unknown (`market.trade_batch`).
CODES = [0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2]


def sides_read(path: Path) -> list[int]:
    source = inspect_file(path, ReadOptions(symbol="BTC-USDT"))
    bad = BadRows()
    frame = pl.concat(list(source.chunks(bad)))
    assert bad.total == 0
    return frame["side"].to_list()


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_every_spelling_of_a_side_reads_as_its_code(kind: str, tmp_path: Path) -> None:
    n = len(SPELLINGS)
    frame = pl.DataFrame({
        "ts": [1_709_251_200_000 + i for i in range(n)],
        "price": [62_000.0 + i for i in range(n)],
        "size": [0.5] * n,
        "side": SPELLINGS,
    })
    path = tmp_path / f"trades.{kind}"
    if kind == "csv":
        frame.write_csv(path)
    else:
        frame.write_parquet(path)
    assert sides_read(path) == CODES
