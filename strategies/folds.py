"""Walk-forward folds: which bars each fold trains on and which it tests on (pure arithmetic).

Bars are numbered 0..n-1 in time order and every window is half-open `[start, end)`. The test
windows are consecutive and of equal length `test_bars`; the first starts after the first
training window, and each fold trains on the bars just before its test window:

- rolling (`anchored=False`): the `train_bars` bars before the test window;
- anchored (`anchored=True`): every bar from 0 up to the test window, so training grows.

A training window therefore ends where its test window starts: no fold trains on a bar it
tests on, and nothing after the test window's start is seen before it (no look-ahead). The
bars left over when `n` does not divide evenly are after the last test window and are unused.

Sizes: give `train_bars`, or `train_fraction` (the share of one fold's train + test span that
is training, so `train_bars = test_bars * f / (1 - f)`). Without `test_bars`, the test windows
share what training leaves: `(n - train_bars) // folds` each.
"""

from __future__ import annotations

import math

import msgspec

from strategies.errors import InvalidRequest

MAX_FOLDS = 100
#: A window shorter than this cannot hold a trade.
MIN_WINDOW_BARS = 2


class Window(msgspec.Struct, frozen=True):
    """Bars `start` to `end - 1`."""

    start: int
    end: int

    @property
    def bars(self) -> int:
        return self.end - self.start


class Fold(msgspec.Struct, frozen=True, kw_only=True):
    """One fold: search on `train`, then run the best params on `test`."""

    index: int
    train: Window
    test: Window


def plan_folds(
    bars: int,
    *,
    folds: int,
    train_bars: int | None = None,
    train_fraction: float | None = None,
    test_bars: int | None = None,
    anchored: bool = False,
) -> list[Fold]:
    """The folds over `bars` bars (see the module docstring). Raises `InvalidRequest` naming
    the argument (`folds`, `train_bars`, `train_fraction`, `test_bars`) that cannot work."""
    if not 1 <= folds <= MAX_FOLDS:
        raise InvalidRequest("folds", f"expected 1 to {MAX_FOLDS}, got {folds}")
    if (train_bars is None) == (train_fraction is None):
        raise InvalidRequest("train_bars", "expected train_bars or train_fraction, not both")
    if test_bars is not None and test_bars < MIN_WINDOW_BARS:
        raise InvalidRequest("test_bars", f"expected at least {MIN_WINDOW_BARS}, got {test_bars}")
    if train_bars is not None and train_bars < MIN_WINDOW_BARS:
        raise InvalidRequest(
            "train_bars", f"expected at least {MIN_WINDOW_BARS}, got {train_bars}"
        )
    if train_fraction is not None:
        if not (math.isfinite(train_fraction) and 0.0 < train_fraction < 1.0):
            raise InvalidRequest("train_fraction", f"expected (0, 1), got {train_fraction}")
        ratio = train_fraction / (1.0 - train_fraction)
        if test_bars is None:
            # n = train + folds * test and train = ratio * test.
            test_bars = math.floor(bars / (folds + ratio))
        train_bars = max(math.floor(test_bars * ratio), MIN_WINDOW_BARS)
    assert train_bars is not None
    if test_bars is None:
        test_bars = (bars - train_bars) // folds
    if test_bars < MIN_WINDOW_BARS or train_bars + folds * test_bars > bars:
        raise InvalidRequest(
            "test_bars",
            f"{folds} folds of at least {MIN_WINDOW_BARS} test bars after {train_bars} training"
            f" bars need more than the {bars} bars in the range",
        )
    plan = []
    for index in range(folds):
        test_start = train_bars + index * test_bars
        train_start = 0 if anchored else test_start - train_bars
        plan.append(Fold(
            index=index,
            train=Window(train_start, test_start),
            test=Window(test_start, test_start + test_bars),
        ))
    return plan
