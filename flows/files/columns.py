"""Columns of generic trade and candle files: which header names hold which field.

A generic file (CSV with a header row, or Parquet) names its columns. Each field is found by
`--columns` (`ts=Time,price=Price,size=Qty`), or else by one of its usual names, compared in
lower case without spaces, dashes or underscores (`Open Time` is `opentime`):

- trades: `ts`, `price`, `size` required; `side`, `id`, `buyer_maker` (a boolean: the buyer
  was the maker, so the taker sold) optional;
- candles: `ts`, `open`, `high`, `low`, `close`, `volume` required; `trades` (a count) and
  `vwap` optional.

Two columns that could both be one field, or a file that could hold trades or candles, are
ambiguous: an error that says which names to pass, never a guess.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from flows.files.layouts import Kind

TRADE_FIELDS = ("ts", "price", "size", "side", "id", "buyer_maker")
CANDLE_FIELDS = ("ts", "open", "high", "low", "close", "volume", "trades", "vwap")
REQUIRED: dict[Kind, tuple[str, ...]] = {
    "trades": ("ts", "price", "size"),
    "candles": ("ts", "open", "high", "low", "close", "volume"),
}
FIELDS: dict[Kind, tuple[str, ...]] = {"trades": TRADE_FIELDS, "candles": CANDLE_FIELDS}

ALIASES: dict[str, tuple[str, ...]] = {
    "ts": ("ts", "timestamp", "time", "datetime", "date", "opentime", "timeexchange"),
    "price": ("price",),
    "size": ("size", "amount", "qty", "quantity", "volume"),
    "side": ("side", "takerside"),
    "id": ("id", "tradeid"),
    "buyer_maker": ("isbuyermaker", "buyermaker"),
    "open": ("open",),
    "high": ("high",),
    "low": ("low",),
    "close": ("close",),
    "volume": ("volume", "vol"),
    "trades": ("trades", "count", "tradecount", "ntrades", "numtrades", "numberoftrades"),
    "vwap": ("vwap",),
}

_NOT_ALNUM = re.compile(r"[^a-z0-9]")


class ColumnsError(ValueError):
    """A `--columns` mapping or a header that does not say which column holds a field."""


def normalized(name: str) -> str:
    return _NOT_ALNUM.sub("", name.lower())


def parse_columns(text: str) -> dict[str, str]:
    """`ts=Time,price=Price` as {field: column name}; unknown fields are errors."""
    mapping: dict[str, str] = {}
    known = sorted(set(TRADE_FIELDS) | set(CANDLE_FIELDS))
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        field, sep, column = item.partition("=")
        field, column = field.strip(), column.strip()
        if not sep or not column:
            raise ColumnsError(f"--columns entry {item!r} is not field=column")
        if field not in known:
            raise ColumnsError(
                f"--columns names an unknown field {field!r}; fields: {', '.join(known)}"
            )
        if field in mapping:
            raise ColumnsError(f"--columns names the field {field!r} twice")
        mapping[field] = column
    return mapping


@dataclass(frozen=True, slots=True)
class ColumnMap:
    """What a generic file holds (`kind`) and the header name of each field it has."""

    kind: Kind
    columns: Mapping[str, str]


def resolve(
    header: Sequence[str], given: Mapping[str, str], kind: Kind | None = None
) -> ColumnMap:
    """Find each field's column in `header`, `given` first (see the module docstring).

    `kind` restricts the file to trades or candles; None tells it from the columns.
    Raises `ColumnsError` saying what is missing or ambiguous.
    """
    for field, column in given.items():
        if column not in header:
            raise ColumnsError(
                f"--columns maps {field} to {column!r}, which is not a column here;"
                f" columns: {', '.join(header)}"
            )
    kinds: list[Kind] = [kind] if kind is not None else ["trades", "candles"]
    found = {k: _match(header, given, k) for k in kinds}
    complete = [k for k in kinds if all(f in found[k] for f in REQUIRED[k])]
    if len(complete) == 1:
        return ColumnMap(complete[0], found[complete[0]])
    if len(complete) > 1:
        raise ColumnsError(
            "its columns could hold trades (price, size) or candles (open, high, low, close);"
            " pass --format trades or --format candles"
        )
    # Nothing complete: say what the likeliest kind lacks.
    best = max(kinds, key=lambda k: sum(f in found[k] for f in REQUIRED[k]))
    missing = [f for f in REQUIRED[best] if f not in found[best]]
    raise ColumnsError(
        f"no column for {', '.join(missing)} of {best} (columns: {', '.join(header)});"
        f" name them with --columns, e.g. --columns {missing[0]}=<column>"
    )


def _match(header: Sequence[str], given: Mapping[str, str], kind: Kind) -> dict[str, str]:
    by_name: dict[str, list[str]] = {}
    for column in header:
        by_name.setdefault(normalized(column), []).append(column)
    taken = set(given.values())
    out: dict[str, str] = {f: c for f, c in given.items() if f in FIELDS[kind]}
    for field in FIELDS[kind]:
        if field in out:
            continue
        matches = [
            c for alias in ALIASES[field] for c in by_name.get(alias, []) if c not in taken
        ]
        if len(matches) > 1:
            raise ColumnsError(
                f"columns {', '.join(repr(m) for m in matches)} could each be {field};"
                f" name one with --columns {field}=<column>"
            )
        if matches:
            out[field] = matches[0]
            taken.add(matches[0])
    return out
