"""Opening files: what is refused, and why, before a row is read."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from flows.files.bad_rows import BadRows
from flows.files.errors import FileImportError
from flows.files.opening import DataFile
from flows.files.reader import ReadOptions, inspect_file
from tests.flows.files.layouts import binance_trades, sample_trades, write


def test_archives_it_cannot_read_are_refused_by_name(tmp_path: Path) -> None:
    (tmp_path / "t.csv.zst").write_bytes(b"x")
    with pytest.raises(FileImportError, match=r"t.csv.zst: is compressed as .zst"):
        DataFile.at(tmp_path / "t.csv.zst")
    with zipfile.ZipFile(tmp_path / "two.zip", "w") as archive:
        archive.writestr("a.csv", "1")
        archive.writestr("b.csv", "2")
    with pytest.raises(FileImportError, match=r"must hold exactly one data file; it holds a\.csv"):
        DataFile.at(tmp_path / "two.zip")
    (tmp_path / "t.parquet.gz").write_bytes(b"x")
    with pytest.raises(FileImportError, match="unpack it from its archive first"):
        DataFile.at(tmp_path / "t.parquet.gz")
    with pytest.raises(FileImportError, match="cannot read it"):
        DataFile.at(tmp_path / "missing.csv")


def test_a_corrupt_archive_is_an_error_naming_the_file(tmp_path: Path) -> None:
    path = write(tmp_path / "t.csv", binance_trades(sample_trades(20_000)), "gzip")
    data = bytearray(path.read_bytes())
    del data[len(data) // 2:]  # cut short
    path.write_bytes(bytes(data))
    source = inspect_file(path, ReadOptions(symbol="BTC-USDT"))
    with pytest.raises(FileImportError, match=r"t.csv.gz: cannot decompress it"):
        list(source.chunks(BadRows()))
