from __future__ import annotations

from pathlib import Path

from graphql_schema.schema import build_schema

SDL = Path(__file__).parent.parent / "graphql_schema" / "schema.graphql"


def test_committed_sdl_matches_the_code() -> None:
    # On failure, regenerate with: candlegraph schema > graphql_schema/schema.graphql
    assert SDL.read_text() == build_schema().as_str() + "\n"
