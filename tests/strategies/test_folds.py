"""Walk-forward fold windows: no fold tests on a bar it trained on or trains after its test."""

from __future__ import annotations

import itertools
from typing import Required, TypedDict

import pytest

from strategies.errors import InvalidRequest
from strategies.folds import plan_folds


class FoldOptions(TypedDict, total=False):
    """Keyword arguments of `plan_folds`."""

    folds: Required[int]
    train_bars: int
    train_fraction: float
    test_bars: int
    anchored: bool


@pytest.mark.parametrize(
    ("bars", "options"),
    [
        (1000, {"folds": 4, "train_bars": 200}),
        (1000, {"folds": 4, "train_bars": 200, "test_bars": 150}),
        (1000, {"folds": 5, "train_bars": 100, "anchored": True}),
        (997, {"folds": 12, "train_fraction": 0.5}),
        (997, {"folds": 3, "train_fraction": 0.8, "anchored": True}),
    ],
)
def test_folds_never_train_on_their_test_bars_nor_after_them(
    bars: int, options: FoldOptions
) -> None:
    folds = plan_folds(bars, **options)
    assert [fold.index for fold in folds] == list(range(options["folds"]))
    for fold in folds:
        assert 0 <= fold.train.start < fold.train.end == fold.test.start < fold.test.end <= bars
        if options.get("anchored"):
            assert fold.train.start == 0
    for before, after in itertools.pairwise(folds):
        # Test windows follow one another without overlap or gap, all of one length.
        assert before.test.end == after.test.start
        assert before.test.bars == after.test.bars
        if not options.get("anchored"):
            assert before.train.bars == after.train.bars


def test_a_train_fraction_splits_each_fold_span_by_that_share() -> None:
    folds = plan_folds(1300, folds=12, train_fraction=0.5)
    assert (folds[0].train.bars, folds[0].test.bars) == (100, 100)
    assert folds[-1].test.end == 1300


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"folds": 0, "train_bars": 10}, "folds"),
        ({"folds": 2}, "train_bars"),
        ({"folds": 2, "train_bars": 10, "train_fraction": 0.5}, "train_bars"),
        ({"folds": 2, "train_fraction": 1.0}, "train_fraction"),
        ({"folds": 2, "train_bars": 10, "test_bars": 1}, "test_bars"),
        ({"folds": 10, "train_bars": 50, "test_bars": 10}, "test_bars"),
    ],
)
def test_folds_that_cannot_fit_are_refused_naming_the_argument(
    options: FoldOptions, field: str
) -> None:
    with pytest.raises(InvalidRequest) as refused:
        plan_folds(100, **options)
    assert refused.value.field == field
