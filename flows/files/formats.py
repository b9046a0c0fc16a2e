"""Telling a file's format from its first lines (CSV) or its column names (Parquet).

- A first line with no number in it is a header row. A header that is exactly one of a known
  layout's (`flows.files.layouts`) names that layout; any other header makes a generic file,
  whose columns `flows.files.columns` finds.
- A file without a header row is one of the Binance layouts, told apart by the number of
  fields and the shape of their values (integers, decimals, booleans) on the first
  `SAMPLE_LINES` lines, of which more than half must fit (a bad row early on is a bad row,
  not another format). Generic files need a header.
- `--format` restricts the choice to that format; the file must still look like it.

When no layout fits, or more than one does, `FormatError` says so and asks for `--format` (or
`--columns`): nothing is guessed. Binance file names (`BTCUSDT-aggTrades-2024-03.zip`) are
checked against the format found and the symbol imported.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from flows.files.columns import ColumnsError, resolve
from flows.files.errors import FileImportError, FormatError
from flows.files.layouts import (
    BINANCE_AGGTRADES,
    BINANCE_KLINES,
    BINANCE_TRADES,
    FORMATS,
    LAYOUTS,
    Kind,
    Layout,
)

#: Lines looked at to tell a headerless layout.
SAMPLE_LINES = 20

_INT = re.compile(r"^-?[0-9]+$")
_DEC = re.compile(r"^-?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$")
_BOOL = re.compile(r"^(true|false)$", re.IGNORECASE)
_BINANCE_NAME = re.compile(
    r"^(?P<symbol>[A-Z0-9]+)-(?P<kind>trades|aggTrades|[0-9]+(s|m|h|d|w|mo))-[0-9]{4}-[0-9]{2}"
)


@dataclass(frozen=True, slots=True)
class FileFormat:
    """How to read one file: its format, whether a header row comes first, its columns in
    order, the column of each field, and the shape of each read column's values (`i`, `d`,
    `b`, `s`: integer, decimal, boolean, text)."""

    name: str
    label: str
    has_header: bool
    columns: tuple[str, ...]
    fields: Mapping[str, str]
    shapes: Mapping[str, str] = field(default_factory=dict)

    @property
    def kind(self) -> Kind:
        return FORMATS[self.name]


def sample_rows(lines: Sequence[str]) -> list[list[str]]:
    """The first lines split into fields as CSV (quotes honoured), blank lines skipped."""
    rows = [row for row in csv.reader(line for line in lines if line.strip())]
    return [[value.strip() for value in row] for row in rows[:SAMPLE_LINES + 1]]


def detect_csv(
    path: Path,
    rows: Sequence[Sequence[str]],
    *,
    requested: str | None = None,
    columns: Mapping[str, str] | None = None,
) -> FileFormat:
    """The format of a CSV file whose first lines split into `rows`."""
    _check_requested(path, requested)
    if not rows:
        raise FormatError(path, "is empty")
    first = [v.lstrip("\ufeff") for v in rows[0]]
    if not any(_INT.match(v) or _DEC.match(v) for v in first):
        return _from_header(path, first, rows[1:], requested, columns or {})
    if columns:
        raise FormatError(path, "has no header row, so --columns cannot name its columns")
    return _from_shape(path, rows, requested)


def detect_parquet(
    path: Path,
    names: Sequence[str],
    *,
    requested: str | None = None,
    columns: Mapping[str, str] | None = None,
) -> FileFormat:
    """The format of a Parquet file with these column names (always a generic file)."""
    _check_requested(path, requested)
    if requested is not None and requested not in ("trades", "candles"):
        raise FormatError(path, f"is a Parquet file, which is never {requested}")
    kind: Kind | None = requested  # type: ignore[assignment]  # a Kind: checked above
    try:
        found = resolve(names, columns or {}, kind)
    except ColumnsError as error:
        raise FormatError(path, str(error)) from error
    return FileFormat(found.kind, found.kind, True, tuple(names), dict(found.columns))


def check_file_name(path: Path, fmt: FileFormat, symbol: str) -> None:
    """Refuse a Binance-named file whose name contradicts its format or the symbol."""
    match = _BINANCE_NAME.match(path.name)
    if match is None or not fmt.name.startswith("binance"):
        return
    kind = match["kind"]
    named = (
        BINANCE_TRADES if kind == "trades"
        else BINANCE_AGGTRADES if kind == "aggTrades"
        else BINANCE_KLINES
    )
    if named != fmt.name:
        raise FormatError(path, f"its name says {named} but its content is {fmt.label}")
    if match["symbol"] != symbol.replace("-", ""):
        raise FileImportError(
            path, f"its name says {match['symbol']} but the symbol imported is {symbol}"
        )


def _check_requested(path: Path, requested: str | None) -> None:
    if requested is not None and requested not in FORMATS:
        raise FormatError(path, f"unknown --format {requested!r}; formats: {', '.join(FORMATS)}")


def _from_header(
    path: Path,
    header: list[str],
    data: Sequence[Sequence[str]],
    requested: str | None,
    columns: Mapping[str, str],
) -> FileFormat:
    known = [
        layout for layout in LAYOUTS
        if tuple(header) in layout.headers and requested in (None, layout.format)
    ]
    if known and not columns:
        layout = known[0]
        names = tuple(header)
        return FileFormat(
            layout.format, layout.label, True, names,
            {f: names[i] for i, f in enumerate(layout.fields) if f != "_"},
            {names[i]: s for i, s in enumerate(layout.shapes)},
        )
    if requested is not None and requested not in ("trades", "candles"):
        expected = "; ".join(
            ",".join(h) for layout in LAYOUTS if layout.format == requested
            for h in layout.headers
        ) or "no header row"
        raise FormatError(
            path, f"its header {','.join(header)} is not that of {requested} (expected: {expected})"
        )
    kind: Kind | None = requested  # type: ignore[assignment]  # a Kind: checked above
    try:
        found = resolve(header, columns, kind)
    except ColumnsError as error:
        raise FormatError(path, str(error)) from error
    shapes = {
        column: _generic_shape(name, [row[header.index(column)] for row in data
                                      if len(row) == len(header)])
        for name, column in found.columns.items()
    }
    return FileFormat(found.kind, found.kind, True, tuple(header), dict(found.columns), shapes)


def _generic_shape(field_name: str, values: Sequence[str]) -> str:
    """How to read a generic column: numbers as decimals, ids as text, times as integers,
    decimals or text (dates) as their first values show."""
    if field_name == "buyer_maker":
        return "b"
    if field_name in ("side", "id"):
        return "s"
    if field_name == "ts":
        present = [v for v in values if v]
        if present and all(_INT.match(v) for v in present):
            return "i"
        if present and all(_DEC.match(v) for v in present):
            return "d"
        return "s"
    return "d"


def _from_shape(path: Path, rows: Sequence[Sequence[str]], requested: str | None) -> FileFormat:
    fitting = [
        layout for layout in LAYOUTS
        if requested in (None, layout.format)
        and not layout.header_required
        and 2 * sum(_fits(layout, row) for row in rows) > len(rows)
    ]
    if len(fitting) == 1:
        layout = fitting[0]
        names = tuple(f if f != "_" else f"_{i}" for i, f in enumerate(layout.fields))
        return FileFormat(
            layout.format, layout.label, False, names,
            {f: f for f in layout.fields if f != "_"},
            dict(zip(names, layout.shapes, strict=True)),
        )
    width = len(rows[0])
    if fitting:
        labels = ", ".join(layout.label for layout in fitting)
        raise FormatError(path, f"could be any of {labels}; pass --format")
    if requested is not None:
        raise FormatError(
            path, f"does not look like {requested}: its first line has {width} fields"
            f" ({','.join(rows[0])[:120]})"
        )
    raise FormatError(
        path,
        f"has no header row and its first line ({width} fields: {','.join(rows[0])[:120]})"
        " matches none of the Binance layouts; a generic CSV needs a header row naming its"
        " columns",
    )


def _fits(layout: Layout, row: Sequence[str]) -> bool:
    if len(row) != len(layout.shapes):
        return False
    for value, shape in zip(row, layout.shapes, strict=True):
        if shape == "i" and not _INT.match(value):
            return False
        if shape == "d" and not _DEC.match(value):
            return False
        if shape == "b" and not _BOOL.match(value):
            return False
    return True
