"""Subscription events executed once for every subscriber of the same operation.

When a hundred clients watch one candle series with the same document and variables, each
update would otherwise be executed a hundred times by graphql-core (about 100 µs each): the
fan-out's latency would grow with the number of subscribers. An event whose payload type is
listed in `SHARED_PAYLOADS` is executed once; the other subscribers get the same result,
found by the operation node (one per parsed document, shared through the parser cache), the
variables and the payload's field values. A result with errors is never shared.

`shared_events(base)` makes an execution context class with its own bounded cache, so each
schema (and so each app) has its own.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Hashable
from inspect import isawaitable
from typing import Any

from graphql import ExecutionResult, OperationType
from graphql.execution import Executor

from graphql_schema.types import Candle

#: Payload types whose execution depends only on their field values, not on the request.
SHARED_PAYLOADS: tuple[type, ...] = (Candle,)


class SharedEventResults:
    """The latest `maxsize` event results, by (operation, variables, payload values)."""

    def __init__(self, maxsize: int = 256) -> None:
        self._maxsize = maxsize
        self._results: OrderedDict[Hashable, tuple[object, ExecutionResult]] = OrderedDict()

    def get(self, key: Hashable, operation: object) -> ExecutionResult | None:
        entry = self._results.get(key)
        # The entry holds its operation node, so an id reused after collection never matches.
        return entry[1] if entry is not None and entry[0] is operation else None

    def put(self, key: Hashable, operation: object, result: ExecutionResult) -> None:
        if result.errors:
            return
        self._results[key] = (operation, result)
        self._results.move_to_end(key)
        while len(self._results) > self._maxsize:
            self._results.popitem(last=False)


def shared_events(base: type[Executor], maxsize: int = 256) -> type[Executor]:
    """A subclass of `base` that shares subscription event results through its own cache."""
    results = SharedEventResults(maxsize)

    class SharedEventExecutor(base):  # type: ignore[valid-type, misc]  # a base made at run time
        _event: Hashable | None = None  # the key of the event this executor runs

        def build_per_event_executor(self, payload: Any) -> Any:
            key = self._event_key(payload)
            if key is not None:
                cached = results.get(key, self.operation)
                if cached is not None:
                    return _Executed(cached)  # not even the per-event copy of the executor
            executor = super().build_per_event_executor(payload)
            executor._event = key
            return executor

        def execute_operation(self, *args: Any, **kwargs: Any) -> Any:
            result = super().execute_operation(*args, **kwargs)
            key = self._event
            if key is None:
                return result
            if isawaitable(result):
                return self._put_when_done(key, result)
            results.put(key, self.operation, result)
            return result

        async def _put_when_done(self, key: Hashable, pending: Awaitable[Any]) -> Any:
            result = await pending
            results.put(key, self.operation, result)
            return result

        def _event_key(self, payload: object) -> Hashable | None:
            if (self.operation.operation is not OperationType.SUBSCRIPTION
                    or not isinstance(payload, SHARED_PAYLOADS)):
                return None
            try:
                key = (id(self.operation),
                       tuple(sorted(self.variable_values.coerced.items())),
                       type(payload), tuple(vars(payload).values()))
                hash(key)
            except TypeError:
                return None  # an unhashable variable or field: execute as usual
            return key

    return SharedEventExecutor


class _Executed:
    """Stands in for a per-event executor whose result is already known."""

    def __init__(self, result: ExecutionResult) -> None:
        self._result = result

    def execute_operation(self, *args: Any, **kwargs: Any) -> ExecutionResult:
        return self._result
