"""Strawberry types of research runs: how a sweep searches, and a walk-forward's result.

Each translates one of `strategies`' and adds nothing: `SearchInput` becomes a
`strategies.service.SearchRequest`, a walk-forward's stored `WalkForwardResult` becomes
`WalkForward`.
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum

import msgspec
import strawberry
from strawberry.scalars import JSON

from graphql_schema.backtest_types import BacktestMetrics, BacktestStatus
from graphql_schema.types import to_datetime
from strategies.service import SearchRequest
from strategies.walkforward import WalkForwardResult


@strawberry.enum(description="How parameters are searched.")
class SearchMethod(Enum):
    GRID = "GRID"
    RANDOM = "RANDOM"
    TPE = "TPE"


@strawberry.input(
    description="How a sweep (or each walk-forward fold) searches its parameters. GRID runs "
    "every combination of `grid`; RANDOM and TPE (Optuna's Tree-structured Parzen Estimator) "
    "run `trials` trials, `batch` at a time across the workers, over `space`, the `grid`'s "
    "values, or every parameter not fixed in `input.params` within the strategy's bounds."
)
class SearchInput:
    method: SearchMethod = SearchMethod.GRID
    trials: int | None = strawberry.field(
        default=None, description="RANDOM and TPE: how many runs (at most the sweep cap)."
    )
    seed: int | None = strawberry.field(
        default=None, description="The same seed asks the same trials; random if left out."
    )
    batch: int | None = strawberry.field(
        default=None, description="Trials in flight at once (4); part of what a seed repeats."
    )
    space: JSON | None = strawberry.field(
        default=None,
        description='Ranges by parameter, e.g. {"fast": {"min": 5, "max": 50, "step": 5}, '
        '"slow": [50, 100, 200]}; a float without step is searched continuously.',
    )

    def request(self) -> SearchRequest:
        return SearchRequest(
            method=self.method.value, trials=self.trials, seed=self.seed, batch=self.batch,
            space=self.space,
        )


@strawberry.type(description="One walk-forward fold: trained on one window, tested on the next.")
class WalkForwardFold:
    index: int
    train_start: datetime
    train_end: datetime
    test_start: datetime
    test_end: datetime
    train_bars: int
    test_bars: int
    status: BacktestStatus = strawberry.field(
        description="SUCCEEDED once its out-of-sample run has; else how its sweep or run ended."
    )
    error: str | None
    sweep_id: strawberry.ID = strawberry.field(description="The fold's in-sample sweep.")
    test_id: strawberry.ID | None = strawberry.field(description="Its out-of-sample run.")
    params: JSON | None = strawberry.field(description="The params the in-sample sweep chose.")
    in_sample: BacktestMetrics | None = strawberry.field(
        description="The chosen params' metrics on the training window."
    )
    out_of_sample: BacktestMetrics | None


@strawberry.type(
    description="A walk-forward's result: its folds, and the out-of-sample runs stitched into "
    "one curve (the walk-forward's `equity` and `trades`)."
)
class WalkForward:
    rank_by: str
    folds: list[WalkForwardFold]
    metrics: BacktestMetrics | None = strawberry.field(
        description="Of the stitched out-of-sample curve; null unless every fold succeeded."
    )
    efficiency: float | None = strawberry.field(
        description="Out-of-sample CAGR over the mean in-sample CAGR; null when that mean is "
        "not above zero."
    )

    @classmethod
    def of(cls, metrics_json: str) -> WalkForward:
        result = msgspec.json.decode(metrics_json, type=WalkForwardResult)
        return cls(
            rank_by=result.rank_by,
            metrics=BacktestMetrics.of(result.metrics) if result.metrics is not None else None,
            efficiency=result.efficiency,
            folds=[
                WalkForwardFold(
                    index=fold.window.index,
                    train_start=to_datetime(fold.window.train_start_ns),
                    train_end=to_datetime(fold.window.train_end_ns),
                    test_start=to_datetime(fold.window.test_start_ns),
                    test_end=to_datetime(fold.window.test_end_ns),
                    train_bars=fold.window.train_bars,
                    test_bars=fold.window.test_bars,
                    status=BacktestStatus(fold.status),
                    error=fold.error,
                    sweep_id=strawberry.ID(fold.sweep_id),
                    test_id=strawberry.ID(fold.test_id) if fold.test_id is not None else None,
                    params=JSON(fold.params) if fold.params is not None else None,
                    in_sample=(
                        BacktestMetrics.of(fold.in_sample) if fold.in_sample is not None else None
                    ),
                    out_of_sample=(
                        BacktestMetrics.of(fold.out_of_sample)
                        if fold.out_of_sample is not None else None
                    ),
                )
                for fold in result.folds
            ],
        )
