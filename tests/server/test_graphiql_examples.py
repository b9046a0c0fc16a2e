"""The GraphiQL page's example tabs are valid operations of the current schema."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from graphql import parse, validate

from graphql_schema.schema import build_schema
from server.app import EXAMPLE_QUERIES, graphiql_page


@pytest.mark.parametrize("example", EXAMPLE_QUERIES, ids=lambda e: e["query"].splitlines()[1])
def test_every_graphiql_example_validates_against_the_schema(example: dict[str, str]) -> None:
    schema = build_schema()
    errors = validate(schema._schema, parse(example["query"]))
    assert errors == []


def test_the_backtest_tab_gets_a_range_around_the_server_start() -> None:
    now = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
    page = graphiql_page(now)
    tabs = json.loads(page.split("const EXAMPLES = ", 1)[1].split(";\n", 1)[0])
    run = next(tab for tab in tabs if "mutation RunBacktest" in tab["query"])
    assert json.loads(run["variables"]) == {
        "start": "2026-05-03T12:00:00+00:00", "end": "2026-05-05T12:00:00+00:00"
    }
    assert "__AROUND_START__" not in page
