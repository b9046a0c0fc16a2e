"""Reading a data file in chunks of trade or candle rows.

`inspect_file` opens a file, tells its format from its first lines (or Parquet schema) and,
for candles, its timeframe; `SourceFile.chunks` then reads it in chunks of about
`BLOCK_BYTES` of text (Parquet: `PARQUET_BATCH_ROWS` rows), parsed by polars, and yields the
good rows as `flows.files.rows` columns. Bad rows go to `BadRows` with their line number
(Parquet: row number); blank lines are skipped. Memory holds a few chunks at a time,
whatever the file's size: a text file is read ahead by a thread (`flows.files.opening.Prefetch`,
two chunks ahead), so inflating an archive runs beside the parsing.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq

from flows.files.bad_rows import BadRow, BadRows
from flows.files.errors import FileImportError, FormatError
from flows.files.formats import (
    FileFormat,
    check_file_name,
    detect_csv,
    detect_parquet,
    sample_rows,
)
from flows.files.layouts import BINANCE_KLINES, Kind
from flows.files.opening import DataFile, Prefetch
from flows.files.rows import candle_reasons, candle_rows, trade_reasons, trade_rows
from flows.files.timestamps import ns_expr
from market.messages import DEFAULT_MAX_FUTURE_NS
from market.timeframes import Timeframe, TimeframeError

#: Text parsed per chunk; a line is never split between chunks.
BLOCK_BYTES = 16 << 20
#: Rows per chunk of a Parquet file.
PARQUET_BATCH_ROWS = 1 << 18
#: Text read to tell a file's format.
HEAD_BYTES = 64 << 10

_DTYPES = {"i": pl.Int64(), "d": pl.Float64(), "b": pl.Boolean(), "s": pl.String()}
_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True, slots=True)
class ReadOptions:
    """What the user said about the files: `--format`, `--columns`, the symbol imported (to
    check Binance file names), and `--timeframe` for generic candle files."""

    format: str | None = None
    columns: Mapping[str, str] = field(default_factory=dict)
    symbol: str = ""
    timeframe: Timeframe | None = None
    now_ns: Callable[[], int] = time.time_ns


@dataclass(frozen=True, slots=True)
class SourceFile:
    """A file ready to read: its content, format and (candles) timeframe."""

    data: DataFile
    format: FileFormat
    timeframe: Timeframe | None
    options: ReadOptions

    @property
    def path(self) -> Path:
        return self.data.path

    @property
    def kind(self) -> Kind:
        return self.format.kind

    def chunks(
        self, bad: BadRows, progress: Callable[[int], None] | None = None
    ) -> Iterator[pl.DataFrame]:
        """The file's good rows in chunks; `progress(bytes)` is told the bytes of the file
        on disk read since its last call. Checks the share of bad rows as it goes."""
        path = str(self.path)
        max_ns = self.options.now_ns() + DEFAULT_MAX_FUTURE_NS
        ids = _IdMaker()
        done = 0
        for first_line, raw, frame, consumed in self._frames():
            if progress is not None:
                progress(consumed - done)
            done = consumed
            if self.kind == "trades":
                rows = trade_rows(frame, self.format.fields, max_ns=max_ns)
                why = partial(trade_reasons, fields=self.format.fields, max_ns=max_ns)
            else:
                assert self.timeframe is not None
                rows = candle_rows(
                    frame, self.format.fields, self.format.name,
                    width_ns=self.timeframe.ns, max_ns=max_ns,
                )
                why = partial(
                    candle_reasons, fields=self.format.fields, fmt_name=self.format.name,
                    width_ns=self.timeframe.ns, max_ns=max_ns,
                )
            good, bad_rows, blank = _split(
                rows, frame, why, first_line, raw, path, self.data.is_parquet
            )
            bad.add(path, len(rows) - blank, bad_rows)
            bad.check(path, at_end=False)
            if self.kind == "trades":
                good = ids.fill(good)
            if len(good):
                yield good
        bad.check(path, at_end=True)
        if progress is not None and done < self.data.size:
            progress(self.data.size - done)

    def _frames(self) -> Iterator[tuple[int, memoryview | None, pl.DataFrame, int]]:
        """(first line or row number, the chunk's text, its columns, bytes read on disk)."""
        if self.data.is_parquet:
            yield from self._parquet_frames()
            return
        fmt = self.format
        wanted = sorted({fmt.columns.index(c) for c in fmt.fields.values()})
        schema = {name: _DTYPES[fmt.shapes.get(name, "s")] for name in fmt.columns}
        with self.data.open() as opened, Prefetch(opened, size=BLOCK_BYTES) as reading:
            for first_line, block in _blocks(reading, skip_header=fmt.has_header):
                try:
                    frame = pl.read_csv(
                        io.BytesIO(block), has_header=False, schema=schema, columns=wanted,
                        ignore_errors=True, truncate_ragged_lines=True, encoding="utf8-lossy",
                    )
                except pl.exceptions.NoDataError:
                    continue  # blank lines only
                yield first_line, block, frame, reading.consumed()

    def _parquet_frames(self) -> Iterator[tuple[int, memoryview | None, pl.DataFrame, int]]:
        wanted = list(dict.fromkeys(self.format.fields.values()))
        try:
            # A text `side` is read as a dictionary (a category per spelling, not a string
            # per row): reading and mapping it then take a fraction of the time. pyarrow
            # ignores the option for a column of numbers.
            side = self.format.fields.get("side")
            # Without pre-buffering: pyarrow keeps pre-buffered column chunks of the whole file.
            parquet = pq.ParquetFile(self.path, pre_buffer=False,
                                     read_dictionary=[side] if side is not None else [])
            total = max(parquet.metadata.num_rows, 1)
            row = 1
            for batch in parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=wanted):
                frame = pl.from_arrow(batch)
                assert isinstance(frame, pl.DataFrame)
                row += len(frame)
                yield row - len(frame), None, frame, self.data.size * (row - 1) // total
        except (OSError, ValueError) as error:  # pyarrow's errors derive from these
            raise FileImportError(self.path, f"cannot read it as Parquet: {error}") from error


def inspect_file(path: Path, options: ReadOptions) -> SourceFile:
    """Open `path` far enough to tell its format; raise `FileImportError` if it cannot be
    imported."""
    data = DataFile.at(path)
    if data.is_parquet:
        try:
            schema = pq.ParquetFile(path).schema_arrow
        except (OSError, ValueError) as error:
            raise FileImportError(path, f"cannot read it as Parquet: {error}") from error
        fmt = detect_parquet(path, schema.names, requested=options.format,
                             columns=options.columns)
        rows: list[list[str]] = []
    else:
        with data.open() as reading:
            head = reading.read(HEAD_BYTES)
            complete = len(head) < HEAD_BYTES
        if head.startswith(_BOM):
            head = head[len(_BOM):]
        lines = head.decode("utf-8", "replace").splitlines()
        if not complete:
            lines = lines[:-1]  # the last line may be cut
        rows = sample_rows(lines)
        fmt = detect_csv(path, rows, requested=options.format, columns=options.columns)
        if len(set(fmt.columns)) != len(fmt.columns):
            raise FormatError(path, f"its header names a column twice: {','.join(fmt.columns)}")
    check_file_name(path, fmt, options.symbol)
    timeframe = None
    if fmt.kind == "candles":
        timeframe = _candle_timeframe(path, fmt, rows, options)
    return SourceFile(data, fmt, timeframe, options)


def _candle_timeframe(
    path: Path, fmt: FileFormat, rows: list[list[str]], options: ReadOptions
) -> Timeframe:
    if fmt.name != BINANCE_KLINES:
        if options.timeframe is None:
            raise FormatError(path, "holds candles: say their timeframe with --timeframe")
        return options.timeframe
    data = rows[1:] if fmt.has_header else rows
    times = [
        (int(row[0]), int(row[6])) for row in data
        if len(row) > 6 and row[0].isdigit() and row[6].isdigit()
    ]
    if not times:
        raise FormatError(path, "holds no candle with an open and a close time")
    frame = pl.DataFrame({"open": [times[0][0]], "close": [times[0][1]]})
    opened, closed = frame.select(
        ns_expr("open", pl.Int64()), ns_expr("close", pl.Int64())
    ).row(0)
    # close_time is the last millisecond (or microsecond) of the candle.
    unit = 1_000 if times[0][0] >= 10**14 else 1_000_000
    width = closed - opened + unit
    timeframe = _timeframe_of(width)
    if timeframe is None:
        raise FormatError(
            path, f"its candles are {width} ns wide, which is no fixed timeframe (monthly"
            " candles are not supported)"
        )
    if options.timeframe is not None and options.timeframe != timeframe:
        raise FormatError(
            path, f"holds {timeframe.name} candles, not the {options.timeframe.name} asked for"
        )
    return timeframe


def _timeframe_of(width_ns: int) -> Timeframe | None:
    for unit, ns in (("d", 86400 * 10**9), ("h", 3600 * 10**9), ("m", 60 * 10**9),
                     ("s", 10**9)):
        if width_ns > 0 and width_ns % ns == 0:
            try:
                return Timeframe.parse(f"{width_ns // ns}{unit}")
            except TimeframeError:
                return None
    return None


def _blocks(reading: Prefetch, *, skip_header: bool) -> Iterator[tuple[int, memoryview]]:
    """Whole lines of the stream, about `BLOCK_BYTES` at a time, with the number of each
    block's first line. A block is a view of one reused buffer: it is valid until the next
    one is asked for."""
    buffer = bytearray(BLOCK_BYTES)
    view = memoryview(buffer)
    filled = 0
    line = 1
    first = True
    while True:
        at_end = False
        while filled < len(buffer):
            n = reading.readinto(view[filled:])
            if not n:
                at_end = True
                break
            filled += n
        cut = filled if at_end else buffer.rfind(b"\n", 0, filled) + 1
        if cut == 0:  # a line longer than the buffer: grow it
            buffer.extend(bytes(len(buffer)))
            view.release()
            view = memoryview(buffer)
            continue
        start = 0
        if first:
            first = False
            if buffer.startswith(_BOM):
                start = len(_BOM)
            if skip_header:
                end = buffer.find(b"\n", start, cut)
                start = cut if end < 0 else end + 1
                line = 2
        if start < cut:
            yield line, view[start:cut]
            # numpy counts the newlines in half the time `bytearray.count` takes.
            newlines = np.count_nonzero(np.frombuffer(buffer, np.uint8, cut - start, start) == 10)
            line += int(newlines) + (buffer[cut - 1] != 10)
        if at_end:
            return
        view[:filled - cut] = view[cut:filled]
        filled -= cut


def _split(
    rows: pl.DataFrame,
    frame: pl.DataFrame,
    why: Callable[[pl.DataFrame], list[str]],
    first_line: int,
    raw: memoryview | None,
    path: str,
    parquet: bool,
) -> tuple[pl.DataFrame, list[BadRow], int]:
    """Good rows, bad rows (with line and reason) and the number of blank lines."""
    flagged = rows["bad"]
    if not flagged.any():
        return rows.drop("bad"), [], 0
    good = rows.filter(~flagged).drop("bad")
    indices = np.flatnonzero(flagged.to_numpy())
    reasons = why(frame[indices])
    texts = _lines(raw, indices) if raw is not None else [None] * len(indices)
    bad: list[BadRow] = []
    blank = 0
    for index, reason, text in zip(indices.tolist(), reasons, texts, strict=True):
        if text is not None and not text.strip():
            blank += 1
            continue
        shown = f"{reason}: {text[:200]}" if text is not None else reason
        bad.append(BadRow(path, first_line + index, shown if not parquet else reason))
    return good, bad, blank


def _lines(raw: memoryview, indices: np.ndarray) -> list[str]:
    ends = np.flatnonzero(np.frombuffer(raw, np.uint8) == 10)
    starts = np.concatenate(([0], ends + 1))
    out = []
    for i in indices.tolist():
        start = int(starts[i])
        end = int(ends[i]) if i < len(ends) else len(raw)
        out.append(bytes(raw[start:end]).decode("utf-8", "replace").rstrip("\r"))
    return out


class _IdMaker:
    """Ids for trades without one: time, price, size, and the count of identical trades
    before it in the file (carried across chunks for the last time of a chunk)."""

    def __init__(self) -> None:
        self._carry = pl.DataFrame(schema={"ts": pl.Int64, "price": pl.Float64,
                                           "size": pl.Float64, "_seen": pl.UInt32})

    def fill(self, rows: pl.DataFrame) -> pl.DataFrame:
        missing = (rows["id"] < 0) & rows["sid"].is_null()
        if not missing.any():
            return rows
        keys = ["ts", "price", "size"]
        numbered = rows.with_columns(
            pl.int_range(pl.len(), dtype=pl.UInt32).over(keys).alias("_n")
        ).join(self._carry, on=keys, how="left", maintain_order="left").with_columns(
            (pl.col("_n") + pl.col("_seen").fill_null(0)).alias("_n")
        )
        last = rows["ts"].max()
        self._carry = (
            numbered.filter(pl.col("ts") == last)
            .group_by(keys).agg((pl.col("_n").max() + 1).alias("_seen"))
        )
        made = pl.format("{}:{}:{}:{}", "ts", "price", "size", "_n")
        return numbered.select(
            "ts", "price", "size", "side", "id",
            pl.when((pl.col("id") < 0) & pl.col("sid").is_null()).then(made)
            .otherwise(pl.col("sid")).alias("sid"),
        )
