"""`OperationGuard`: every per-operation step of the API in one Strawberry schema extension.

Strawberry builds a context manager for each hook of each extension on every request (about
10 µs apiece), so these steps share one extension with three hooks instead of seven extensions
with nine:

- caches: parsed documents and validation results are kept in the LRU caches of Strawberry's
  `ParserCache` and `ValidationCache` (passed in), so a repeated query is neither parsed nor
  validated again;
- limits: the token limit of the parser, and the validation rules for depth and aliases
  (Strawberry's `MaxTokensLimiter` and `AddValidationRules` do the same, one hook each);
- access: before execution, the request's `Access` is asked about the operation's type (query,
  mutation or subscription), so every mutation or subscription added to the schema is covered
  without doing anything. A refusal is reported like a validation error: the operation does
  not start, and over websockets the client gets an `error` message for it. Strawberry decides
  whether validation failed before the `on_validate` hooks resume, so the check runs on entry,
  after validation: an invalid document gets its validation errors (and an invalid mutation
  spends no rate-limit token);
- masking (`MaskErrors`): a bug's message is replaced by a generic one coded INTERNAL, and the
  original is logged; errors without a code that are not bugs (syntax and validation errors of
  the document, the token limit) keep their message and get the code BAD_USER_INPUT, so every
  error has a code; a message longer than `MAX_MESSAGE_CHARS` (it may quote the client's
  input) is cut to that length;
- observing: an `OperationObserver` (the server's metrics) hears of each operation when it
  starts and, with its error codes and duration, when it ends.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Protocol

from graphql import ASTValidationRule, DocumentNode, GraphQLError
from strawberry.extensions import MaskErrors
from strawberry.types import ExecutionResult, StreamExecutionResult

from market.messages import bounded

log = logging.getLogger(__name__)

#: The kind of an operation whose document did not parse, or names no operation.
INVALID = "invalid"
#: Longest error message sent to a client or logged: a message may quote the client's input.
MAX_MESSAGE_CHARS = 2000


class OperationObserver(Protocol):
    def operation_started(self, name: str | None, kind: str) -> None:
        """An operation passed validation (`kind`: query, mutation, subscription), or failed
        before it could (`kind` is `INVALID`)."""

    def operation_finished(
        self, name: str | None, kind: str, seconds: float, codes: Sequence[str]
    ) -> None:
        """An operation ended after `seconds`, with errors of these codes."""


class OperationGuard(MaskErrors):
    def __init__(
        self,
        *,
        max_tokens: int,
        validation_rules: Sequence[type[ASTValidationRule]],
        parse: Callable[..., DocumentNode],
        validate: Callable[..., list[GraphQLError]],
        observer: OperationObserver | None = None,
    ) -> None:
        super().__init__(
            should_mask_error=_needs_rewrite,
            error_message="Internal error; it has been logged.",
        )
        self._max_tokens = max_tokens
        self._validation_rules = tuple(validation_rules)
        self._observer = observer
        self._kind: str | None = None
        self._parse = parse
        self._validate = validate

    def on_operation(self) -> Iterator[None]:
        context = self.execution_context
        context.parse_options["max_tokens"] = self._max_tokens
        context.validation_rules = context.validation_rules + self._validation_rules
        started = time.perf_counter()
        yield from super().on_operation()
        if self._observer is None:
            return
        kind = self._kind or self._started()
        errors = getattr(context.result, "errors", None) or context.pre_execution_errors or []
        codes = [str((error.extensions or {}).get("code", "BAD_USER_INPUT")) for error in errors]
        self._observer.operation_finished(
            context.operation_name, kind, time.perf_counter() - started, codes
        )

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        # Raised here, a syntax error would escape the operation's hooks (no code, no
        # metrics); left unparsed, Strawberry parses again and reports it as a pre-execution
        # error, which masking then gives its code.
        with contextlib.suppress(GraphQLError):
            context.graphql_document = self._parse(context.query, **context.parse_options)
        yield

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        context.pre_execution_errors = self._validate(
            context.schema._schema, context.graphql_document, context.validation_rules
        )
        # A schema used directly (tests, the SDL printer) has no request and no caller.
        if not context.pre_execution_errors and context.context is not None:
            try:
                context.context.access.authorize(context.operation_type.value)
            except GraphQLError as refusal:
                # A new list: the validation cache may hand out the one it holds.
                context.pre_execution_errors = [refusal]
        yield
        if self._observer is not None:
            self._started()

    def on_stream_result(self, result: StreamExecutionResult) -> Iterator[None]:
        # A live update without errors has nothing to mask; skipping the checks saves ~10 µs
        # per update and subscriber, which the fan-out pays a hundred times per candle.
        if getattr(result, "errors", None) or not isinstance(result, ExecutionResult):
            yield from super().on_stream_result(result)
        else:
            yield

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        if not is_unexpected(error):
            return GraphQLError(
                bounded(error.message, MAX_MESSAGE_CHARS), nodes=error.nodes,
                source=error.source, positions=error.positions, path=error.path,
                extensions={"code": "BAD_USER_INPUT", **(error.extensions or {})},
            )
        log.error("unexpected error in %s", error.path, exc_info=error.original_error)
        masked = super().anonymise_error(error)
        masked.extensions = {"code": "INTERNAL"}
        return masked

    def _started(self) -> str:
        context = self.execution_context
        try:
            kind = context.operation_type.value
        except Exception:
            kind = INVALID
        self._kind = kind
        assert self._observer is not None
        self._observer.operation_started(context.operation_name, kind)
        return kind


def is_unexpected(error: GraphQLError) -> bool:
    """Errors we raise on purpose are GraphQLErrors with a code; anything else is a bug."""
    original = error.original_error
    return original is not None and not isinstance(original, GraphQLError)


def _needs_rewrite(error: GraphQLError) -> bool:
    return (
        is_unexpected(error)
        or "code" not in (error.extensions or {})
        or len(error.message) > MAX_MESSAGE_CHARS
    )
