"""The schema object, with Strawberry's own guard rails and caches."""

from __future__ import annotations

import logging

import strawberry
from graphql import GraphQLError
from strawberry.extensions import (
    MaxAliasesLimiter,
    ParserCache,
    QueryDepthLimiter,
    ValidationCache,
)
from strawberry.tools import merge_types
from strawberry.types import ExecutionContext

from graphql_schema.backtests import BacktestMutation, BacktestQuery, BacktestSubscription
from graphql_schema.executor import FastExecutor
from graphql_schema.guard import (
    MAX_MESSAGE_CHARS,
    OperationGuard,
    OperationObserver,
    is_unexpected,
)
from graphql_schema.query import Query
from graphql_schema.shared_events import shared_events
from graphql_schema.subscription import Subscription
from market.messages import bounded

log = logging.getLogger(__name__)


class CandleSchema(strawberry.Schema):
    """Strawberry's schema, logging client errors in one line instead of with a traceback.

    Bugs are logged with their traceback by `OperationGuard`.
    """

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        for error in errors:
            if not is_unexpected(error):
                log.info("client error: %s", bounded(error.message, MAX_MESSAGE_CHARS))


def build_schema(
    *,
    max_depth: int = 10,
    max_tokens: int = 2000,
    max_aliases: int = 15,
    observer: OperationObserver | None = None,
) -> strawberry.Schema:
    """The schema; `observer` hears of every operation (the server's metrics)."""
    # Each limiter instance makes its own rule class, and the validation cache is keyed by the
    # rules: made once here, the same classes reach every request and validation is cached
    # (a new limiter per request made every request validate again, ~1 ms each).
    parse = ParserCache(maxsize=256).cached_parse_document
    validate = ValidationCache(maxsize=256).cached_validate_document
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
            lambda: OperationGuard(
                max_tokens=max_tokens, validation_rules=limit_rules, parse=parse,
                validate=validate, observer=observer,
            ),
        ],
    )
