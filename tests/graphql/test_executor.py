"""The fast executor gives exactly what Strawberry's own gives, errors included, only faster."""

from __future__ import annotations

import enum
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
import pytest
import strawberry
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from graphql_schema.columns import ColumnError, FloatColumn, IntColumn, NullableFloatColumn
from graphql_schema.executor import MIN_COLUMN_ITEMS, FastExecutor

START = datetime(2024, 1, 1, tzinfo=UTC)


@strawberry.enum
class Side(enum.Enum):
    BUY = "buy"
    SELL = "sell"


@strawberry.type
class Item:
    name: str
    price: float
    count: int
    when: datetime
    side: Side
    maybe: float | None = None
    key: strawberry.ID = strawberry.ID("k")

    @strawberry.field
    def doubled(self) -> float:
        return self.price * 2


@strawberry.type
class Columns:
    prices: list[float]
    counts: list[int]
    gaps: list[float | None]


def items(n: int, **overrides: Any) -> list[Item]:
    made = [
        Item(name=f"i{i}", price=1.5 * i, count=i, when=START + timedelta(minutes=i),
             side=Side.BUY if i % 2 else Side.SELL, maybe=None if i % 3 else i / 7)
        for i in range(n)
    ]
    for index, fields in overrides.items():
        for field, value in fields.items():
            setattr(made[int(index.removeprefix("at"))], field, value)
    return made


def schema_serving(value: Any, columns: Columns | None = None) -> tuple[Any, Any]:
    @strawberry.type
    class Query:
        @strawberry.field
        def items(self) -> list[Item]:
            return value

        @strawberry.field
        def maybe_items(self) -> list[Item | None] | None:
            return value

        @strawberry.field
        def columns(self) -> Columns:
            assert columns is not None
            return columns

    fast = strawberry.Schema(query=Query, execution_context_class=FastExecutor)
    plain = strawberry.Schema(
        query=Query, execution_context_class=StrawberryGraphQLCoreExecutionContext
    )
    return fast, plain


async def both(value: Any, query: str, columns: Columns | None = None) -> tuple[Any, Any]:
    fast, plain = schema_serving(value, columns)
    return await fast.execute(query), await plain.execute(query)


def same(fast: Any, plain: Any) -> None:
    assert fast.data == plain.data
    assert [(e.message, e.path) for e in fast.errors or []] == [
        (e.message, e.path) for e in plain.errors or []
    ]


@pytest.mark.parametrize(
    "selection",
    [
        "name price count when side maybe key",
        "__typename a: price b: price ...f",
        "name count @skip(if: true) price @include(if: false) maybe",
        "doubled name",
        "... on Item { price } when",
        "name @skip(if: true)",
    ],
)
async def test_lists_of_objects_complete_as_strawberry_completes_them(selection: str) -> None:
    fragment = " fragment f on Item { count side }" if "...f" in selection else ""
    fast, plain = await both(
        items(50), f"{{ items {{ {selection} }} maybeItems {{ {selection} }} }}{fragment}"
    )
    assert fast.errors is None
    same(fast, plain)


@pytest.mark.parametrize(
    "broken",
    [
        {"at7": {"price": math.nan}},
        {"at7": {"price": math.inf}},
        {"at3": {"name": None}},
        {"at9": {"count": 2**40}},
        {"at1": {"count": "seven"}},
        {"at4": {"when": "not a datetime"}},
        {"at2": {"price": 3}},
    ],
)
async def test_a_bad_value_in_a_long_list_gives_the_same_error_as_usual(
    broken: dict[str, dict[str, Any]],
) -> None:
    fast, plain = await both(
        items(20, **broken), "{ maybeItems { name price count when } }"
    )
    same(fast, plain)


async def test_null_items_and_non_objects_take_the_normal_path() -> None:
    fast, plain = await both([*items(20), None], "{ maybeItems { name } }")
    same(fast, plain)
    assert fast.data["maybeItems"][-1] is None
    fast, plain = await both([*items(20), 42], "{ maybeItems { name } }")
    same(fast, plain)
    assert fast.errors


async def test_the_fast_path_resolves_a_list_without_a_resolver_call_per_field(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = 0
    execute_field = FastExecutor.execute_field

    def counting(self: FastExecutor, *args: Any) -> Any:
        nonlocal calls
        calls += 1
        return execute_field(self, *args)

    monkeypatch.setattr(FastExecutor, "execute_field", counting)
    fast, _ = schema_serving(items(1000))
    result = await fast.execute("{ items { name price count when side maybe } }")
    assert result.errors is None and len(result.data["items"]) == 1000
    assert calls == 1
    # A short list is cheaper the usual way: one call per field of each item.
    fast, plain = schema_serving(items(MIN_COLUMN_ITEMS - 1))
    calls = 0
    result = await fast.execute("{ items { name price } }")
    assert calls == 1 + 2 * (MIN_COLUMN_ITEMS - 1)
    assert result.data == (await plain.execute("{ items { name price } }")).data


async def test_columns_are_returned_whole_and_equal_the_normal_result() -> None:
    columns = Columns(
        prices=FloatColumn.of([1.0, 2.5, 3]),
        counts=IntColumn.of([1, 2, 3]),
        gaps=NullableFloatColumn.of([1.0, math.nan, None, math.inf, 4]),
    )
    fast, plain = await both([], "{ columns { prices counts gaps } }", columns)
    same(fast, plain)
    assert fast.data["columns"] == {
        "prices": [1.0, 2.5, 3.0], "counts": [1, 2, 3], "gaps": [1.0, None, None, None, 4.0]
    }


async def test_a_column_on_a_field_of_another_type_takes_the_normal_path() -> None:
    # A float column where [Int!] is declared: graphql-core's Int coercion decides, as usual.
    columns = Columns(prices=FloatColumn.of([1.0]), counts=FloatColumn.of([1.5]), gaps=[])  # type: ignore[arg-type]  # on purpose: floats for an Int column
    fast, plain = await both([], "{ columns { counts } }", columns)
    same(fast, plain)
    assert fast.errors and "Int cannot represent non-integer value: 1.5" in fast.errors[0].message


@pytest.mark.parametrize(
    ("build", "values", "words"),
    [
        (FloatColumn.of, [1.0, math.nan], "non-finite"),
        (FloatColumn.of, [1.0, -math.inf], "non-finite"),
        (FloatColumn.of, [1.0, "2"], "str"),
        (FloatColumn.of, [1.0, None], "NoneType"),
        (IntColumn.of, [1, 2**31], "32 bits"),
        (IntColumn.of, [1, 2.0], "float"),
        (NullableFloatColumn.of, [1.0, "x"], "str"),
    ],
)
def test_a_column_refuses_values_its_scalar_cannot_carry(
    build: Any, values: list[Any], words: str
) -> None:
    with pytest.raises(ColumnError, match=words):
        build(values)


def test_a_float_column_of_huge_finite_values_is_accepted() -> None:
    # Their sum overflows to inf; the column then looks at each value.
    assert FloatColumn.of([1e308, 1e308]) == [1e308, 1e308]


@pytest.mark.parametrize(
    ("series", "words"),
    [
        (pl.Series([1.0, math.nan]), "non-finite"),
        (pl.Series([1.0, math.inf]), "non-finite"),
        (pl.Series([1.0, None]), "NoneType"),
        (pl.Series(["1.0"]), "str"),
    ],
)
def test_a_float_column_of_a_polars_series_checks_it_as_of_does(
    series: pl.Series, words: str
) -> None:
    with pytest.raises(ColumnError, match=words):
        FloatColumn.of_series(series)


def test_a_float_column_of_a_polars_series_holds_its_values_as_floats() -> None:
    column = FloatColumn.of_series(pl.Series([1.5, -2.0, 1e308]))
    assert column == [1.5, -2.0, 1e308] and isinstance(column, FloatColumn)
    assert FloatColumn.of_series(pl.Series([1, 2])) == [1.0, 2.0]  # ints become floats
    assert all(type(v) is float for v in FloatColumn.of_series(pl.Series([1, 2])))
