"""The schema object, with Strawberry's own guard rails and caches."""

from __future__ import annotations

import logging

import strawberry
from graphql import GraphQLError
from strawberry.extensions import (
    MaskErrors,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    ValidationCache,
)

from graphql_schema.query import Query
from graphql_schema.subscription import Subscription

log = logging.getLogger(__name__)


class MaskUnexpectedErrors(MaskErrors):
    """Replace a bug's message with a generic one coded INTERNAL, and log the original."""

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        log.error("unexpected error in %s", error.path, exc_info=error.original_error)
        masked = super().anonymise_error(error)
        masked.extensions = {"code": "INTERNAL"}
        return masked


def _is_unexpected(error: GraphQLError) -> bool:
    # Errors we raise on purpose are GraphQLErrors with a code; anything else is a bug.
    original = error.original_error
    return original is not None and not isinstance(original, GraphQLError)


def build_schema(
    *, max_depth: int = 10, max_tokens: int = 2000, max_aliases: int = 15
) -> strawberry.Schema:
    return strawberry.Schema(
        query=Query,
        subscription=Subscription,
        extensions=[
            lambda: ParserCache(maxsize=256),
            lambda: ValidationCache(maxsize=256),
            lambda: QueryDepthLimiter(max_depth=max_depth),
            lambda: MaxTokensLimiter(max_token_count=max_tokens),
            lambda: MaxAliasesLimiter(max_alias_count=max_aliases),
            lambda: MaskUnexpectedErrors(
                should_mask_error=_is_unexpected,
                error_message="Internal error; it has been logged.",
            ),
        ],
    )
