"""Opening files: what is refused, and why, before a row is read."""

from __future__ import annotations

import threading
import zipfile
from pathlib import Path

import pytest
from zlib_ng import zlib_ng

from flows.files.bad_rows import BadRows
from flows.files.errors import FileImportError
from flows.files.opening import DataFile, Prefetch
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


@pytest.mark.parametrize("compression", ["gzip", "zip"])
@pytest.mark.parametrize("damage", ["bytes flipped midway", "a reserved block type first"])
def test_a_damaged_archive_is_an_error_naming_the_file(
    tmp_path: Path, compression: str, damage: str
) -> None:
    path = write(tmp_path / "t.csv", binance_trades(sample_trades(20_000)), compression)
    data = bytearray(path.read_bytes())
    if damage == "bytes flipped midway":  # caught by the checksum, or as bad codes
        middle = len(data) // 2
        data[middle:middle + 64] = bytes(b ^ 0xFF for b in data[middle:middle + 64])
    else:  # the first deflate block's header says BTYPE 11: the inflater itself fails
        header = 10 if compression == "gzip" else 30 + len("t.csv")
        data[header] = 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(FileImportError, match=rf"{path.name}: cannot decompress it"):
        # Damage at the start is met while the format is detected, from the first lines.
        list(inspect_file(path, ReadOptions(symbol="BTC-USDT")).chunks(BadRows()))


@pytest.mark.parametrize("compression", ["gzip", "zip", "stored zip"])
def test_archives_read_back_exactly_what_was_packed(tmp_path: Path, compression: str) -> None:
    text = binance_trades(sample_trades(50_000)).encode()
    if compression == "stored zip":
        path = tmp_path / "t.zip"
        with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
            archive.writestr("t.csv", text)
    else:
        path = write(tmp_path / "t.csv", text, compression)
    with DataFile.at(path).open() as reading:
        if compression == "zip":  # inflated by zlib-ng, not the standard library's zlib
            decompressor = reading.stream._decompressor  # type: ignore[attr-defined]
            assert type(decompressor) is type(zlib_ng.decompressobj(-15))
        read = b"".join(iter(lambda: reading.read(65_536), b""))
    assert read == text


@pytest.mark.parametrize("compression", ["zip", "stored zip"])
def test_a_zip_member_whose_crc_does_not_match_is_an_error_naming_the_file(
    tmp_path: Path, compression: str
) -> None:
    text = binance_trades(sample_trades(20_000)).encode()
    path = tmp_path / "t.zip"
    method = zipfile.ZIP_STORED if compression == "stored zip" else zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(path, "w", method) as archive:
        archive.writestr("t.csv", text)
    data = bytearray(path.read_bytes())
    # The central directory's CRC-32 of the member (what zipfile checks), off by one.
    crc_at = data.rindex(b"PK\x01\x02") + 16
    crc = int.from_bytes(data[crc_at:crc_at + 4], "little")
    data[crc_at:crc_at + 4] = ((crc + 1) % 2**32).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    with pytest.raises(FileImportError, match=r"t.zip: cannot decompress it: Bad CRC-32"):
        list(inspect_file(path, ReadOptions(symbol="BTC-USDT")).chunks(BadRows()))


@pytest.mark.parametrize("compression", ["gzip", "zip", "none"])
def test_a_prefetched_file_reads_back_exactly_and_stops_its_thread(
    tmp_path: Path, compression: str
) -> None:
    text = binance_trades(sample_trades(30_000)).encode()
    path = write(tmp_path / "t.csv", text, compression)
    got = bytearray()
    with DataFile.at(path).open() as opened, Prefetch(opened, size=7_919, depth=2) as reading:
        buffer = memoryview(bytearray(5_003))  # pieces and reads cut at different places
        while n := reading.readinto(buffer):
            got += buffer[:n]
        assert reading.readinto(buffer) == 0  # the end stays the end
        assert 0 < reading.consumed() <= path.stat().st_size  # (a zip: up to its directory)
    assert got == text
    assert not [t for t in threading.enumerate() if t.name == f"read {path.name}"]


def test_leaving_a_prefetched_file_early_stops_its_thread(tmp_path: Path) -> None:
    path = write(tmp_path / "t.csv", binance_trades(sample_trades(30_000)), "gzip")
    with DataFile.at(path).open() as opened, Prefetch(opened, size=1_000, depth=1) as reading:
        assert reading.readinto(memoryview(bytearray(10))) == 10
    assert not [t for t in threading.enumerate() if t.name == f"read {path.name}"]


def test_a_read_error_reaches_the_reader_where_the_data_ends(tmp_path: Path) -> None:
    text = binance_trades(sample_trades(20_000)).encode()
    path = write(tmp_path / "t.csv", text, "gzip")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # cut short
    got = bytearray()
    with DataFile.at(path).open() as opened, Prefetch(opened, size=4_096) as reading:
        buffer = memoryview(bytearray(4_096))
        with pytest.raises(FileImportError, match=r"t.csv.gz: cannot decompress it"):
            while n := reading.readinto(buffer):
                got += buffer[:n]
    assert got and text.startswith(got)  # what was inflated before the cut came through
