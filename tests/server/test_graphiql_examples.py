"""The GraphiQL page's example tabs are valid operations of the current schema."""

from __future__ import annotations

import pytest
from graphql import parse, validate

from graphql_schema.schema import build_schema
from server.app import EXAMPLE_QUERIES


@pytest.mark.parametrize("example", EXAMPLE_QUERIES, ids=lambda e: e["query"].splitlines()[1])
def test_every_graphiql_example_validates_against_the_schema(example: dict[str, str]) -> None:
    schema = build_schema()
    errors = validate(schema._schema, parse(example["query"]))
    assert errors == []
