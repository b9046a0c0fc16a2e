"""Backtest queries, mutations and the progress subscription, over `strategies.service`.

Resolvers translate: GraphQL input to a `strategies.request.BacktestRequest` (all checks are
the service's), and the service's records and errors back. The service names a refused field
in its request's terms (`params.fast`, `maker_fee`, `rank_by`); `_arguments` turns that into
the GraphQL argument the client sent (`input.params.fast`, `input.makerFee`, `rankBy`) for
`BadArgument`.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import AsyncGenerator, Iterator, Mapping
from contextlib import contextmanager
from typing import Annotated, cast

import strawberry
from strawberry.scalars import JSON
from strawberry.utils.str_converters import to_camel_case

from graphql_schema.backtest_types import (
    Backtest,
    BacktestFilterInput,
    BacktestInput,
    BacktestPage,
    Strategy,
    backtest_service,
)
from graphql_schema.context import Context
from graphql_schema.errors import BadArgument, NotFound
from graphql_schema.research_types import SearchInput
from graphql_schema.types import to_ns
from strategies.errors import InvalidRequest, UnknownBacktest
from strategies.request import BacktestRequest
from strategies.service import BacktestFilter, WalkForwardRequest

_RANK_BY = (
    "total_return, cagr, sharpe, sortino, calmar, max_drawdown, annual_volatility, win_rate, "
    "profit_factor, expectancy or final_equity."
)

#: Most backtests one `backtests` page holds.
MAX_BACKTESTS_PAGE = 100
_TOP_LEVEL = {
    "grid": "grid", "rank_by": "rankBy", "search": "search", "folds": "folds",
    "train_bars": "trainBars", "train_fraction": "trainFraction", "test_bars": "testBars",
}


@strawberry.type
class BacktestQuery:
    @strawberry.field(description="Every strategy backtests can run, with its parameters.")
    def strategies(self, info: strawberry.Info[Context, None]) -> list[Strategy]:
        return [Strategy.of(each) for each in backtest_service(info).strategies()]

    @strawberry.field(description="One backtest or sweep by id (NOT_FOUND if there is none).")
    async def backtest(
        self, info: strawberry.Info[Context, None], id: strawberry.ID
    ) -> Backtest | None:
        record = await backtest_service(info).get(id)
        if record is None:
            raise NotFound(str(UnknownBacktest(id)))
        return Backtest.of(record)

    @strawberry.field(description="Backtests and sweeps, newest first, a page at a time.")
    async def backtests(
        self,
        info: strawberry.Info[Context, None],
        filter: BacktestFilterInput | None = None,
        limit: Annotated[
            int, strawberry.argument(description=f"At most {MAX_BACKTESTS_PAGE}.")
        ] = 20,
        cursor: Annotated[
            str | None, strawberry.argument(description="A page's `nextCursor`.")
        ] = None,
    ) -> BacktestPage:
        if not 1 <= limit <= MAX_BACKTESTS_PAGE:
            raise BadArgument("limit", f"expected 1 to {MAX_BACKTESTS_PAGE}, got {limit}")
        given = filter or BacktestFilterInput()
        request = BacktestFilter(
            status=given.status.value if given.status is not None else None,
            kind=given.kind.value if given.kind is not None else None,
            strategy=given.strategy,
            exchange=given.exchange,
            symbol=given.symbol,
            sweep_id=given.sweep_id,
            include_sweep_runs=given.include_sweep_runs,
        )
        records = await backtest_service(info).list(
            request, limit=limit + 1, created_before_ns=_decode_cursor(cursor)
        )
        page = records[:limit]
        more = len(records) > limit
        return BacktestPage(
            items=[Backtest.of(record) for record in page],
            next_cursor=_encode_cursor(page[-1].created_ns) if more else None,
        )


@strawberry.type
class BacktestMutation:
    @strawberry.mutation(
        description="Queue a backtest; it returns at once with status QUEUED. Follow it with "
        "the backtestProgress subscription or the backtest query."
    )
    async def run_backtest(
        self, info: strawberry.Info[Context, None], input: BacktestInput
    ) -> Backtest:
        with _arguments():
            return Backtest.of(await backtest_service(info).submit(_request(input)))

    @strawberry.mutation(
        description="Cancel a queued or running backtest or sweep (a running one stops within "
        "a batch of bars); a finished one is returned unchanged."
    )
    async def cancel_backtest(
        self, info: strawberry.Info[Context, None], id: strawberry.ID
    ) -> Backtest:
        with _arguments():
            return Backtest.of(await backtest_service(info).cancel(id))

    @strawberry.mutation(
        description="Queue one run per combination of `grid` (each overriding `input.params`), "
        "or with a RANDOM or TPE `search` its trials in batches, across the workers; the "
        "sweep ranks them by `rankBy`. Returns at once with status QUEUED."
    )
    async def run_sweep(
        self,
        info: strawberry.Info[Context, None],
        input: BacktestInput,
        grid: Annotated[
            JSON | None,
            strawberry.argument(
                description='Lists of values by parameter: {"fast": [5, 10]}. Required for '
                "GRID; with RANDOM or TPE, the values to choose from."
            ),
        ] = None,
        rank_by: Annotated[str, strawberry.argument(description=_RANK_BY)] = "sharpe",
        search: Annotated[
            SearchInput | None,
            strawberry.argument(description="GRID (the default), RANDOM or TPE."),
        ] = None,
    ) -> Backtest:
        with _arguments():
            service = backtest_service(info)
            asked = search.request() if search is not None else None
            return Backtest.of(await service.submit_sweep(_request(input), grid, rank_by, asked))

    @strawberry.mutation(
        description="Queue a walk-forward analysis: for each fold, search the params on its "
        "training window (by `grid` or `search`, as runSweep does) and run the best by "
        "`rankBy` on the test window that follows; the out-of-sample runs are stitched into "
        "one curve. Give trainBars or trainFraction. Returns at once with status QUEUED; "
        "follow it with backtestProgress."
    )
    async def run_walk_forward(
        self,
        info: strawberry.Info[Context, None],
        input: BacktestInput,
        folds: Annotated[int, strawberry.argument(description="How many test windows.")],
        grid: JSON | None = None,
        search: SearchInput | None = None,
        train_bars: Annotated[
            int | None, strawberry.argument(description="Bars in each training window.")
        ] = None,
        train_fraction: Annotated[
            float | None,
            strawberry.argument(description="Training share of one fold's train + test bars."),
        ] = None,
        test_bars: Annotated[
            int | None,
            strawberry.argument(description="Bars in each test window; by default what "
                                "training leaves, shared by the folds."),
        ] = None,
        anchored: Annotated[
            bool, strawberry.argument(description="Train from the first bar every time.")
        ] = False,
        rank_by: Annotated[str, strawberry.argument(description=_RANK_BY)] = "sharpe",
    ) -> Backtest:
        with _arguments():
            walk = WalkForwardRequest(
                folds=folds, rank_by=rank_by, grid=grid,
                search=search.request() if search is not None else None,
                train_bars=train_bars, train_fraction=train_fraction, test_bars=test_bars,
                anchored=anchored,
            )
            service = backtest_service(info)
            return Backtest.of(await service.submit_walkforward(_request(input), walk))


@strawberry.type
class BacktestSubscription:
    @strawberry.subscription(
        description="A backtest or sweep now, then at every change of status or progress, "
        "until it ends (SUCCEEDED, FAILED or CANCELLED). A slow client gets the latest state."
    )
    async def backtest_progress(
        self, info: strawberry.Info[Context, None], id: strawberry.ID
    ) -> AsyncGenerator[Backtest, None]:
        with _arguments():
            updates = backtest_service(info).progress(id)
            try:
                async for record in updates:
                    yield Backtest.of(record)
            finally:
                await updates.aclose()


def _request(input: BacktestInput) -> BacktestRequest:
    sizing = input.sizing
    return BacktestRequest(
        exchange=input.exchange,
        symbol=input.symbol,
        timeframe=input.timeframe,
        strategy=input.strategy,
        start_ns=to_ns(input.start),
        end_ns=to_ns(input.end),
        # Any JSON value: check_request refuses one that is not an object.
        params=cast("Mapping[str, object]", input.params if input.params is not None else {}),
        starting_balance=input.starting_balance,
        currency=input.currency,
        maker_fee=input.maker_fee,
        taker_fee=input.taker_fee,
        account_type=input.account_type.value if input.account_type is not None else None,
        leverage=input.leverage,
        quantity=_given(sizing.quantity) if sizing is not None else None,
        fraction=_given(sizing.fraction) if sizing is not None else None,
    )


def _given(value: float | None) -> float | None:
    # A oneOf input leaves the fields it was not given UNSET.
    return None if value is strawberry.UNSET else value


@contextmanager
def _arguments() -> Iterator[None]:
    """Turn the service's errors into GraphQL errors naming the client's argument."""
    try:
        yield
    except InvalidRequest as error:
        raise BadArgument(_argument(error.field), error.message) from error
    except UnknownBacktest as error:
        raise NotFound(str(error)) from error


def _argument(field: str) -> str:
    head, _, rest = field.partition(".")
    if head in _TOP_LEVEL:
        return ".".join(part for part in (_TOP_LEVEL[head], rest) if part)
    if head == "range":
        return "input"
    # Parameter names are the strategy's own; only the input's field names are camelCase.
    return ".".join(part for part in ("input", to_camel_case(head), rest) if part)


def _encode_cursor(created_ns: int) -> str:
    return base64.urlsafe_b64encode(f"created:{created_ns}".encode()).decode()


def _decode_cursor(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    try:
        kind, _, value = base64.urlsafe_b64decode(cursor.encode()).decode().partition(":")
        if kind == "created":
            return int(value)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise BadArgument("cursor", f"expected a nextCursor from a backtests page, got {cursor!r}")
