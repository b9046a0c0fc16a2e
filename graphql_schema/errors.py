"""GraphQL errors clients can act on: a message naming the argument, and a code.

Codes (in `extensions.code`): BAD_USER_INPUT, NOT_FOUND, UNAUTHENTICATED, RATE_LIMITED,
INTERNAL. Any other exception is masked as INTERNAL, so no stack trace reaches a client.
"""

from __future__ import annotations

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
