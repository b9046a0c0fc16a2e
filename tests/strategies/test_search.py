"""RANDOM and TPE parameter search: spaces from the strategy's config, repeatable asks, and
TPE beating random search on a synthetic objective."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from strategies.errors import InvalidRequest
from strategies.registry import ParamValue
from strategies.search import (
    Choices,
    FloatRange,
    IntRange,
    Method,
    Search,
    Told,
    ask,
    build_search,
)
from strategies.spec import BacktestSpec
from strategies.sweep import search_batch


def _peak(params: dict[str, ParamValue]) -> float:
    x, y = params["x"], params["y"]
    return -float((x - 37) ** 2 + (y - 12) ** 2)


PEAK = Search(method="TPE", trials=300, seed=0, batch=4,
              space={"x": IntRange(0, 100), "y": IntRange(0, 100)})


def _trials_to_peak(search: Search, objective: Callable[[dict[str, ParamValue]], float]) -> int:
    history: list[Told] = []
    while len(history) < search.trials:
        for params in ask(search, history, maximize=True, count=search.batch,
                          accept=lambda _: True):
            history.append(Told(params, objective(params)))
            if objective(params) == 0.0:
                return len(history)
    return search.trials


def _asked(search: Search, rounds: int) -> list[dict[str, ParamValue]]:
    history: list[Told] = []
    for _ in range(rounds):
        for params in ask(search, history, maximize=True, count=search.batch,
                          accept=lambda _: True):
            history.append(Told(params, _peak(params)))
    return [told.params for told in history]


@pytest.mark.parametrize("method", ["RANDOM", "TPE"])
def test_a_seeded_search_asks_the_same_trials_again(method: Method) -> None:
    search = Search(method=method, trials=40, seed=5, batch=4,
                    space={"x": IntRange(0, 100), "y": IntRange(0, 100, 5),
                           "k": FloatRange(0.5, 2.0), "flag": Choices([False, True])})
    first = _asked(search, 6)
    assert first == _asked(search, 6)
    assert first != _asked(_reseeded(search, 6), 6)
    for params in first:
        assert params["y"] % 5 == 0 and 0.5 <= params["k"] <= 2.0
        assert isinstance(params["x"], int) and isinstance(params["flag"], bool)


def _reseeded(search: Search, seed: int) -> Search:
    return Search(method=search.method, trials=search.trials, seed=seed, batch=search.batch,
                  space=search.space)


def test_tpe_finds_the_peak_of_a_known_objective_in_fewer_trials_than_random() -> None:
    seeds = range(6)
    tpe = [_trials_to_peak(_reseeded(PEAK, seed), _peak) for seed in seeds]
    random = [
        _trials_to_peak(Search(method="RANDOM", trials=300, seed=seed, batch=4,
                               space=PEAK.space), _peak)
        for seed in seeds
    ]
    assert sum(tpe) < sum(random) / 2, (tpe, random)


def test_the_space_comes_from_the_strategy_config_without_the_fixed_params() -> None:
    search = build_search("rsi_reversion", {"period": 14}, method="TPE", trials=10, seed=1,
                          batch=None, space=None, grid=None, max_trials=100)
    assert search.space == {"oversold": FloatRange(1.0, 99.0), "overbought": FloatRange(1.0, 99.0)}
    assert search.batch == 4


def test_refused_combinations_are_asked_again_and_never_run() -> None:
    base = BacktestSpec(exchange="test", symbol="BTC-USDT", timeframe="1h", strategy="ema_cross")
    search = build_search("ema_cross", {}, method="RANDOM", trials=20, seed=3, batch=8,
                          space={"fast": {"min": 2, "max": 60}, "slow": {"min": 2, "max": 60}},
                          grid=None, max_trials=100)
    specs = search_batch(base, search, "sharpe", [], 8)
    assert len(specs) == 8
    assert all(spec.params["fast"] < spec.params["slow"] for spec in specs)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"method": "ANNEALING"}, "search.method"),
        ({"trials": 0}, "search.trials"),
        ({"trials": 101}, "search.trials"),
        ({"batch": 0}, "search.batch"),
        ({"space": {"nope": [1]}}, "search.space.nope"),
        ({"space": {"fast": {"min": 1, "max": 5}}}, "search.space.fast"),
        ({"space": {"fast": {"min": 2.5, "max": 5}}}, "search.space.fast"),
        ({"grid": {"fast": []}}, "grid.fast"),
        ({"grid": {"fast": [5]}, "space": {"fast": [5]}}, "grid"),
    ],
)
def test_bad_searches_are_refused_naming_the_argument(changes: dict[str, object], field: str
                                                      ) -> None:
    arguments: dict[str, object] = {"method": "TPE", "trials": 10, "seed": 1, "batch": None,
                                    "space": None, "grid": None, "max_trials": 100}
    with pytest.raises(InvalidRequest) as refused:
        build_search("ema_cross", {}, **{**arguments, **changes})  # type: ignore[arg-type]  # bad arguments on purpose
    assert refused.value.field == field
