"""GraphQL errors clients can act on: a message naming the problem, and a code.

Codes (in `extensions.code`):
- BAD_USER_INPUT: an argument the API cannot use (`extensions.argument` names it), and any
  syntax or validation error of the document;
- NOT_FOUND: a market, series or record that does not exist;
- UNAUTHENTICATED: no API key, or one that is not recognised, where one is needed;
- RATE_LIMITED: too many mutations for one key (`extensions.retryAfter`: seconds to wait);
- SLOW_CONSUMER: a subscriber fell so far behind that updates would be lost; resubscribe with
  `since` to resume without a gap;
- INTERNAL: anything else, masked (the original is logged), so no stack trace reaches a client.
"""

from __future__ import annotations

import math

from graphql import GraphQLError


class BadArgument(GraphQLError):
    """An argument value the API cannot use; `extensions.argument` names it."""

    def __init__(self, argument: str, message: str) -> None:
        super().__init__(
            f"Argument '{argument}': {message}",
            extensions={"code": "BAD_USER_INPUT", "argument": argument},
        )


class NotFound(GraphQLError):
    def __init__(self, message: str) -> None:
        super().__init__(message, extensions={"code": "NOT_FOUND"})


class Unauthenticated(GraphQLError):
    def __init__(self, message: str) -> None:
        super().__init__(message, extensions={"code": "UNAUTHENTICATED"})


class RateLimited(GraphQLError):
    def __init__(self, message: str, *, retry_after_s: float) -> None:
        super().__init__(
            message,
            extensions={"code": "RATE_LIMITED", "retryAfter": math.ceil(retry_after_s)},
        )


class SlowConsumer(GraphQLError):
    def __init__(self, message: str) -> None:
        super().__init__(message, extensions={"code": "SLOW_CONSUMER"})
