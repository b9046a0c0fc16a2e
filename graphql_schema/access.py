"""Who may run what: one schema extension that asks the request's `Access` before execution.

It looks only at the operation's type (query, mutation or subscription), so every mutation or
subscription added to the schema is covered without doing anything. A refusal is reported like
a validation error: the operation does not start, and over websockets the client gets an
`error` message for it.

Strawberry decides whether validation failed before the `on_validate` hooks resume, so the check
runs on entry. Listed after `ValidationCache`, it sees the document's validation errors first
and leaves an invalid document to them (an invalid mutation spends no rate-limit token).
"""

from __future__ import annotations

from collections.abc import Iterator

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension


class AccessControl(SchemaExtension):
    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        # A schema used directly (tests, the SDL printer) has no request and no caller.
        if not context.pre_execution_errors and context.context is not None:
            try:
                context.context.access.authorize(context.operation_type.value)
            except GraphQLError as refusal:
                # A new list: the validation cache may hand out the one it holds.
                context.pre_execution_errors = [refusal]
        yield
