"""The schema object, with Strawberry's own guard rails and caches."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence

import strawberry
from graphql import GraphQLError
from strawberry.extensions import (
    AddValidationRules,
    MaskErrors,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    SchemaExtension,
    ValidationCache,
)
from strawberry.tools import merge_types
from strawberry.types import ExecutionContext, ExecutionResult, StreamExecutionResult

from graphql_schema.access import AccessControl
from graphql_schema.backtests import BacktestMutation, BacktestQuery, BacktestSubscription
from graphql_schema.executor import FastExecutor
from graphql_schema.query import Query
from graphql_schema.shared_events import shared_events
from graphql_schema.subscription import Subscription

log = logging.getLogger(__name__)


class MaskUnexpectedErrors(MaskErrors):
    """Replace a bug's message with a generic one coded INTERNAL, and log the original.

    Errors without a code that are not bugs (syntax and validation errors of the document)
    keep their message and get the code BAD_USER_INPUT, so every error carries a code.
    """

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        if not _is_unexpected(error):
            return GraphQLError(
                error.message, nodes=error.nodes, source=error.source,
                positions=error.positions, path=error.path,
                extensions={**(error.extensions or {}), "code": "BAD_USER_INPUT"},
            )
        log.error("unexpected error in %s", error.path, exc_info=error.original_error)
        masked = super().anonymise_error(error)
        masked.extensions = {"code": "INTERNAL"}
        return masked

    def on_stream_result(self, result: StreamExecutionResult) -> Iterator[None]:
        # A live update without errors has nothing to mask; skipping the checks saves ~10 µs
        # per update and subscriber, which the fan-out pays a hundred times per candle.
        if getattr(result, "errors", None) or not isinstance(result, ExecutionResult):
            yield from super().on_stream_result(result)
        else:
            yield


def _is_unexpected(error: GraphQLError) -> bool:
    # Errors we raise on purpose are GraphQLErrors with a code; anything else is a bug.
    original = error.original_error
    return original is not None and not isinstance(original, GraphQLError)


def _needs_rewrite(error: GraphQLError) -> bool:
    return _is_unexpected(error) or "code" not in (error.extensions or {})


class CandleSchema(strawberry.Schema):
    """Strawberry's schema, logging client errors in one line instead of with a traceback.

    Bugs are logged with their traceback by `MaskUnexpectedErrors`.
    """

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        for error in errors:
            if not _is_unexpected(error):
                log.info("client error: %s", error.message)


def build_schema(
    *,
    max_depth: int = 10,
    max_tokens: int = 2000,
    max_aliases: int = 15,
    extensions: Sequence[Callable[[], SchemaExtension]] = (),
) -> strawberry.Schema:
    """The schema; `extensions` (factories) are the server's own, e.g. its metrics."""
    # Each limiter instance makes its own rule class, and the validation cache is keyed by the
    # rules: made once here, the same classes reach every request and validation is cached
    # (a new limiter per request made every request validate again, ~1 ms each).
    limit_rules = [
        *QueryDepthLimiter(max_depth=max_depth).validation_rules,
        *MaxAliasesLimiter(max_alias_count=max_aliases).validation_rules,
    ]
    return CandleSchema(
        query=merge_types("Query", (Query, BacktestQuery)),
        mutation=merge_types("Mutation", (BacktestMutation,)),
        subscription=merge_types("Subscription", (Subscription, BacktestSubscription)),
        # Subscribers of one series with one document share each event's execution.
        execution_context_class=shared_events(FastExecutor),
        extensions=[
            lambda: ParserCache(maxsize=256),
            lambda: ValidationCache(maxsize=256),
            lambda: AddValidationRules(limit_rules),
            lambda: MaxTokensLimiter(max_token_count=max_tokens),
            AccessControl,
            *extensions,
            lambda: MaskUnexpectedErrors(
                should_mask_error=_needs_rewrite,
                error_message="Internal error; it has been logged.",
            ),
        ],
    )
