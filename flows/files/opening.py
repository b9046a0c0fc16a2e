"""Opening a data file as a stream of its bytes: plain, gzip (`.gz`) or zip (`.zip`).

A zip must hold exactly one file, as Binance's archives do (`BTCUSDT-trades-2024-03.zip` holds
`BTCUSDT-trades-2024-03.csv`). Parquet files are read in place (they need seeking), so a
Parquet file inside a `.gz` or `.zip` is refused. Progress is counted in bytes of the file on
disk, so a compressed file's progress is its compressed bytes read.

Deflate is inflated by zlib-ng (`zlib_ng`), which reads the same streams about twice as fast
as the standard library's zlib here (a 144 MB zip of klines: 0.62 s instead of 1.19 s), and a
zip member's CRC-32 is computed by zlib-ng too; `zipfile` still checks the CRC and the size.
"""

from __future__ import annotations

import io
import threading
import zipfile
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

from zlib_ng import gzip_ng, zlib_ng

from flows.files.errors import FileImportError

_PARQUET_MAGIC = b"PAR1"
_UNREAD_COMPRESSIONS = (".bz2", ".xz", ".zst", ".7z", ".tar", ".tgz", ".rar", ".lz4")
# What a damaged archive raises as it is read.
_DECOMPRESSION_ERRORS = (
    OSError, EOFError, zipfile.BadZipFile,
    cast("type[Exception]", zlib_ng.error),  # its stub declares an instance
)


@dataclass(frozen=True, slots=True)
class DataFile:
    """A file to read: where it is, how it is compressed, and the name of its content (the
    zip member's name, or the file name without `.gz`)."""

    path: Path
    compression: str  # "none", "gzip" or "zip"
    inner_name: str
    size: int

    @property
    def is_parquet(self) -> bool:
        return self.inner_name.lower().endswith(".parquet")

    @classmethod
    def at(cls, path: Path) -> DataFile:
        """Look at `path` (not its content, beyond a zip's directory)."""
        try:
            size = path.stat().st_size
        except OSError as error:
            raise FileImportError(path, f"cannot read it: {error.strerror or error}") from error
        if not path.is_file():
            raise FileImportError(path, "is not a file")
        name = path.name
        lowered = name.lower()
        other = next((c for c in _UNREAD_COMPRESSIONS if lowered.endswith(c)), None)
        if other is not None:
            raise FileImportError(
                path, f"is compressed as {other}, which is not read: unpack it, or use .gz or .zip"
            )
        if lowered.endswith(".gz"):
            data = cls(path, "gzip", name[:-3], size)
        elif lowered.endswith(".zip"):
            data = cls(path, "zip", _zip_member(path).filename, size)
        else:
            data = cls(path, "none", name, size)
            if not data.is_parquet and _starts_with(path, _PARQUET_MAGIC):
                data = cls(path, "none", name + ".parquet", size)
        if data.is_parquet and data.compression != "none":
            raise FileImportError(
                path, "a Parquet file is read in place; unpack it from its archive first"
            )
        return data

    @contextmanager
    def open(self) -> Iterator[Reading]:
        """The decompressed content as a binary stream, with its progress on disk."""
        try:
            raw = self.path.open("rb")
        except OSError as error:
            raise FileImportError(self.path, f"cannot open it: {error}") from error
        try:
            stream: io.BufferedIOBase
            if self.compression == "gzip":
                stream = gzip_ng.GzipNGFile(fileobj=raw, mode="rb")
            elif self.compression == "zip":
                archive = zipfile.ZipFile(raw)
                member = _zip_member(self.path, archive)
                stream = _read_by_zlib_ng(archive.open(member))
            else:
                stream = raw
            yield Reading(self, stream, raw)
        finally:
            raw.close()


@dataclass(frozen=True, slots=True)
class Reading:
    """An open data file: `stream` is its decompressed content."""

    file: DataFile
    stream: io.BufferedIOBase
    raw: io.BufferedIOBase

    def consumed(self) -> int:
        """Bytes of the file on disk read so far."""
        try:
            return min(self.raw.tell(), self.file.size)
        except (OSError, ValueError):
            return 0

    def read(self, size: int) -> bytes:
        """Up to `size` decompressed bytes; b"" at the end. A corrupt archive raises
        `FileImportError`."""
        try:
            return self.stream.read(size)
        except _DECOMPRESSION_ERRORS as error:
            raise FileImportError(self.file.path, f"cannot decompress it: {error}") from error

    def readinto(self, buffer: memoryview) -> int:
        """Decompressed bytes into `buffer`; how many (0 at the end). As `read`."""
        try:
            return self.stream.readinto(buffer)
        except _DECOMPRESSION_ERRORS as error:
            raise FileImportError(self.file.path, f"cannot decompress it: {error}") from error


class Prefetch:
    """A `Reading` read ahead by a thread of its own, `size` bytes at a time, at most `depth`
    pieces ahead: inflating a compressed file (which releases the GIL) then runs beside the
    caller's parsing, on another core when there is one. `readinto` and `consumed` as
    `Reading`'s (bytes on disk read so far, by the thread); an error of the thread's read is
    raised by the `readinto` that reaches it. Use as a context manager: leaving it stops the
    thread."""

    def __init__(self, reading: Reading, *, size: int, depth: int = 2) -> None:
        self._reading = reading
        self._size = size
        self._depth = depth
        self._ready: deque[bytes | BaseException] = deque()
        self._changed = threading.Condition()
        self._stopped = False
        self._piece = memoryview(b"")
        self._at_end = False
        self._thread = threading.Thread(
            target=self._run, name=f"read {reading.file.path.name}", daemon=True
        )
        self._thread.start()

    def __enter__(self) -> Prefetch:
        return self

    def __exit__(self, *exc_info: object) -> None:
        with self._changed:
            self._stopped = True
            self._changed.notify_all()
        self._thread.join()

    def consumed(self) -> int:
        return self._reading.consumed()

    def readinto(self, buffer: memoryview) -> int:
        if not self._piece:
            if self._at_end:
                return 0
            with self._changed:
                while not self._ready:
                    self._changed.wait()
                item = self._ready.popleft()
                self._changed.notify_all()
            if isinstance(item, BaseException):
                raise item
            if not item:
                self._at_end = True
                return 0
            self._piece = memoryview(item)
        n = min(len(buffer), len(self._piece))
        buffer[:n] = self._piece[:n]
        self._piece = self._piece[n:]
        return n

    def _run(self) -> None:
        while True:
            item: bytes | BaseException
            try:
                item = self._reading.read(self._size)
            except BaseException as error:  # raised in the reading thread
                item = error
            with self._changed:
                while len(self._ready) >= self._depth and not self._stopped:
                    self._changed.wait()
                if self._stopped:
                    return
                self._ready.append(item)
                self._changed.notify_all()
            if not isinstance(item, bytes) or not item:
                return


def _read_by_zlib_ng(member: IO[bytes]) -> io.BufferedIOBase:
    """`member` inflated and checked by zlib-ng instead of zlib (CPython 3.12's `ZipExtFile`):
    its decompressor is `_decompressor`, made at open and first used by the first read, and
    its CRC-32 is kept by `_update_crc`, here as the standard library does it, with zlib-ng's
    `crc32` (3.5 times as fast here: the 2.2 GB CSV of a month of trades in 0.22 s, not 1.22)."""
    assert isinstance(member, zipfile.ZipExtFile)
    if member._compress_type == zipfile.ZIP_DEFLATED:  # type: ignore[attr-defined]
        member._decompressor = zlib_ng.decompressobj(-15)  # type: ignore[attr-defined]
    state: Any = member  # the private attributes `_update_crc` keeps

    def update_crc(data: bytes) -> None:
        if state._expected_crc is None:
            return
        state._running_crc = zlib_ng.crc32(data, state._running_crc)
        if state._eof and state._running_crc != state._expected_crc:
            raise zipfile.BadZipFile(f"Bad CRC-32 for file {member.name!r}")

    state._update_crc = update_crc
    return member


def _zip_member(path: Path, archive: zipfile.ZipFile | None = None) -> zipfile.ZipInfo:
    try:
        if archive is None:
            with zipfile.ZipFile(path) as opened:
                members = [m for m in opened.infolist() if not m.is_dir()]
        else:
            members = [m for m in archive.infolist() if not m.is_dir()]
    except (OSError, zipfile.BadZipFile) as error:
        raise FileImportError(path, f"is not a readable zip archive: {error}") from error
    if len(members) != 1:
        names = ", ".join(m.filename for m in members[:5]) or "nothing"
        raise FileImportError(
            path, f"a zip archive must hold exactly one data file; it holds {names}"
        )
    return members[0]


def _starts_with(path: Path, magic: bytes) -> bool:
    try:
        with path.open("rb") as f:
            return f.read(len(magic)) == magic
    except OSError:
        return False
