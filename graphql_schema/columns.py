"""Columns: lists of leaf values checked once when built, so the executor can return them whole.

graphql-core completes a `[Float!]` list element by element through the scalar's output
coercion, which costs about 2 µs a value (20 ms for one column of 10,000). A column is a `list`
subclass whose values were checked when it was built (type, finiteness, 32-bit range), exactly as
the scalar would check them; `graphql_schema.executor.FastExecutor` returns it as is for the list
type it was built for, and any other executor still iterates it like a list, so the result is the
same either way.

Columns are built by resolvers from the store's numbers: a non-finite float (which JSON cannot
carry) is an error in a `FloatColumn` and a null in a `NullableFloatColumn`; the nullable
columns also carry the store's own nulls (a candle's missing trade count or VWAP).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import ClassVar, cast

import polars as pl

INT_MIN = -(2**31)
INT_MAX = 2**31 - 1


class ColumnError(ValueError):
    """A value that the column's GraphQL list type cannot carry."""


class Column[T](list[T]):
    """Values for one GraphQL list field, already valid for its item type."""

    __slots__ = ()

    #: Name of the item's scalar (`Float`, `Int`) and whether items may be null.
    SCALAR: ClassVar[str]
    NULLABLE: ClassVar[bool]


class FloatColumn(Column[float]):
    """Values of a `[Float!]` field: finite floats (ints become floats)."""

    __slots__ = ()
    SCALAR = "Float"
    NULLABLE = False

    @classmethod
    def of(cls, values: Iterable[float]) -> FloatColumn:
        column = cls(values)
        kinds = set(map(type, column))
        if not kinds <= {float}:
            if not kinds <= {float, int}:
                raise ColumnError(f"a [Float!] column holds {_names(kinds - {float, int})}")
            column = cls(map(float, column))
        # A sum of floats is finite only if every term is (NaN and inf propagate); a finite
        # column may still overflow its sum, so only then look at each value.
        if not math.isfinite(sum(column)) and not all(map(math.isfinite, column)):
            bad = next(v for v in column if not math.isfinite(v))
            raise ColumnError(f"a [Float!] column holds the non-finite value {bad!r}")
        return column


    @classmethod
    def of_series(cls, series: pl.Series) -> FloatColumn:
        """`of` for a polars column: a Float64 one with no null or non-finite value is
        checked in one vectorised pass instead of value by value."""
        if series.dtype == pl.Float64 and series.null_count() == 0 and series.is_finite().all():
            return cls(series.to_list())
        return cls.of(series.to_list())


class NullableFloatColumn(Column[float | None]):
    """Values of a `[Float]` field: floats, with NaN, inf and None all null."""

    __slots__ = ()
    SCALAR = "Float"
    NULLABLE = True

    @classmethod
    def of(cls, values: Iterable[float | None]) -> NullableFloatColumn:
        column = cls(values)
        kinds = set(map(type, column))
        if not kinds <= {float, int, type(None)}:
            raise ColumnError(f"a [Float] column holds {_names(kinds - {float, int, type(None)})}")
        if int in kinds or not all(v is None or v - v == 0.0 for v in column):
            column = cls(
                float(v) if v is not None and math.isfinite(v) else None for v in column
            )
        return column

    @classmethod
    def of_series(cls, series: pl.Series) -> NullableFloatColumn:
        """`of` for a polars column, checked in one vectorised pass when it is Float64 with
        no non-finite value (nulls stay None)."""
        if series.dtype == pl.Float64 and series.drop_nulls().is_finite().all():
            return cls(series.to_list())
        return cls.of(series.to_list())


class IntColumn(Column[int]):
    """Values of an `[Int!]` field: integers within GraphQL's signed 32 bits."""

    __slots__ = ()
    SCALAR = "Int"
    NULLABLE = False

    @classmethod
    def of(cls, values: Iterable[int]) -> IntColumn:
        column = cls(values)
        if not set(map(type, column)) <= {int}:
            raise ColumnError(f"an [Int!] column holds {_names(set(map(type, column)) - {int})}")
        if column and not (min(column) >= INT_MIN and max(column) <= INT_MAX):
            raise ColumnError("an [Int!] column holds a value outside signed 32 bits")
        return column


class NullableIntColumn(Column[int | None]):
    """Values of an `[Int]` field: integers within GraphQL's signed 32 bits, or None."""

    __slots__ = ()
    SCALAR = "Int"
    NULLABLE = True

    @classmethod
    def of(cls, values: Iterable[int | None]) -> NullableIntColumn:
        column = cls(values)
        kinds = set(map(type, column))
        if not kinds <= {int, type(None)}:
            raise ColumnError(f"an [Int] column holds {_names(kinds - {int, type(None)})}")
        # Without a None in it, the column itself holds only ints.
        present = ([v for v in column if v is not None] if type(None) in kinds
                   else cast("list[int]", column))
        if present and not (min(present) >= INT_MIN and max(present) <= INT_MAX):
            raise ColumnError("an [Int] column holds a value outside signed 32 bits")
        return column

    @classmethod
    def of_series(cls, series: pl.Series) -> NullableIntColumn:
        """`of` for a polars column, its range checked in one vectorised pass when it is an
        integer column (nulls stay None)."""
        if series.dtype.is_integer():
            # Ints, or None for a column of nulls: its dtype is an integer.
            low, high = cast("int | None", series.min()), cast("int | None", series.max())
            if low is None or high is None or (low >= INT_MIN and high <= INT_MAX):
                return cls(series.to_list())
        return cls.of(series.to_list())


def _names(kinds: set[type]) -> str:
    return ", ".join(sorted(kind.__name__ for kind in kinds))
