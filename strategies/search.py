"""Parameter search beyond the grid: RANDOM and TPE (Optuna), asked a batch at a time.

A search has a space (`Dimension` per parameter), a budget of `trials`, a `seed` and a `batch`
(how many trials are in flight at once across the workers). No process holds a search: its
state is the trials stored so far. Whoever ends a batch's last run asks the next batch
(`ask`): a fresh Optuna study is told every earlier trial, in trial order, and asked `count`
new ones (ask-and-tell). The sampler's seed is derived from the search's seed and the number
of trials told, so a seeded search asks the same trials whatever the timing of its runs: the
whole search repeats exactly.

The space comes from the strategy's config (`strategies.registry.ParameterSpec`: its bounds,
and its step when the config gives `multiple_of`): every parameter the request does not fix
in `params` is searched, ints on their step, floats continuously or on their step, bools as
a choice. `search.space` narrows it (`{"fast": {"min": 5, "max": 50, "step": 5}}` or a list
of values), and a sweep's `grid` with RANDOM or TPE gives each parameter's values to choose
from. Combinations the strategy refuses (fast >= slow), and combinations already run (a discrete
space runs out), are asked again and never counted: no search runs the same params twice.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from typing import Literal

import msgspec
import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.samplers import BaseSampler, RandomSampler, TPESampler
from optuna.trial import TrialState, create_trial

from strategies.errors import InvalidRequest
from strategies.registry import ParameterSpec, ParamValue, StrategyRegistry, strategy_info

Method = Literal["GRID", "RANDOM", "TPE"]
METHODS: tuple[Method, ...] = ("GRID", "RANDOM", "TPE")
#: Trials in flight at once unless the request says otherwise.
DEFAULT_BATCH = 4
MAX_BATCH = 256
#: How many refused combinations one asked trial may take before the batch is cut short.
_ASKS_PER_TRIAL = 50

# Every batch asks from a new in-memory study: Optuna's INFO line for each ("A new study
# created in memory") says nothing a user needs. Its warnings still show.
optuna.logging.set_verbosity(optuna.logging.WARNING)


class IntRange(msgspec.Struct, frozen=True, tag="int"):
    low: int
    high: int
    step: int = 1


class FloatRange(msgspec.Struct, frozen=True, tag="float"):
    low: float
    high: float
    step: float | None = None


class Choices(msgspec.Struct, frozen=True, tag="choice"):
    values: list[ParamValue]


Dimension = IntRange | FloatRange | Choices


class Search(msgspec.Struct, frozen=True, kw_only=True):
    """A RANDOM or TPE search, as stored with its sweep."""

    method: Method
    trials: int
    seed: int
    batch: int
    space: dict[str, Dimension]


class Told(msgspec.Struct, frozen=True):
    """An earlier trial: its params and its objective (None: failed, or undefined metric)."""

    params: dict[str, ParamValue]
    value: float | None


def build_search(
    strategy: str,
    fixed: Mapping[str, object],
    *,
    method: str,
    trials: int,
    seed: int,
    batch: int | None,
    space: object | None,
    grid: object | None,
    max_trials: int,
    registry: StrategyRegistry | None = None,
) -> Search:
    """The search a request asks for, over the parameters of `strategy` in `registry` (the
    built-ins by default). `fixed` are the request's `params` (not searched unless
    `space` or `grid` names them). Raises `InvalidRequest` naming `search.method`,
    `search.trials`, `search.batch`, `search.space...` or `grid`."""
    if method not in ("RANDOM", "TPE"):
        raise InvalidRequest("search.method", f"expected RANDOM or TPE, got {method!r}")
    if not 1 <= trials <= max_trials:
        raise InvalidRequest("search.trials", f"expected 1 to {max_trials}, got {trials}")
    batch = DEFAULT_BATCH if batch is None else batch
    if not 1 <= batch <= MAX_BATCH:
        raise InvalidRequest("search.batch", f"expected 1 to {MAX_BATCH}, got {batch}")
    specs = {spec.name: spec for spec in strategy_info(strategy, registry).parameters}
    if grid is not None and space is not None:
        raise InvalidRequest("grid", "expected grid or search.space, not both")
    if grid is not None:
        dims = _choices_of(grid, specs)
    elif space is not None:
        dims = _space_of(space, specs)
    else:
        dims = {
            name: _dimension_of(spec) for name, spec in specs.items() if name not in fixed
        }
    if not dims:
        raise InvalidRequest("search.space", "expected at least one parameter to search")
    return Search(method=method, trials=trials, seed=seed, batch=batch, space=dims)  # type: ignore[arg-type]


def ask(
    search: Search,
    history: Sequence[Told],
    *,
    maximize: bool,
    count: int,
    accept: Callable[[dict[str, ParamValue]], bool],
) -> list[dict[str, ParamValue]]:
    """`count` new trials' params (fewer if the strategy refuses too many), after telling the
    sampler every trial of `history` in order. The same history gives the same trials."""
    distributions = {name: _distribution(dim) for name, dim in search.space.items()}
    study = optuna.create_study(
        direction="maximize" if maximize else "minimize",
        sampler=_sampler(search, len(history)),
    )
    for told in history:
        study.add_trial(create_trial(
            params={name: told.params[name] for name in distributions},
            distributions=distributions,
            value=told.value,
            state=TrialState.COMPLETE if told.value is not None else TrialState.FAIL,
        ))
    known = {_key(told.params, distributions): told.value for told in history}
    asked: list[dict[str, ParamValue]] = []
    for _ in range(count * _ASKS_PER_TRIAL):
        if len(asked) == count:
            break
        trial = study.ask(distributions)
        params = {name: _native(search.space[name], value) for name, value in trial.params.items()}
        key = _key(params, distributions)
        if key in known and known[key] is not None:
            # Run before: the sampler learns its result again instead of a second run.
            study.tell(trial, known[key])
        elif key in known or not accept(params):
            study.tell(trial, state=TrialState.FAIL)
        else:
            known[key] = None
            asked.append(params)
    return asked


def _key(params: Mapping[str, ParamValue], names: Mapping[str, object]) -> tuple[object, ...]:
    return tuple(params[name] for name in names)


def _sampler(search: Search, told: int) -> BaseSampler:
    digest = hashlib.sha256(f"{search.seed}:{told}".encode()).digest()
    seed = int.from_bytes(digest[:4], "big")
    if search.method == "RANDOM":
        return RandomSampler(seed=seed)
    return TPESampler(seed=seed, constant_liar=True)


def _distribution(dim: Dimension) -> BaseDistribution:
    match dim:
        case IntRange(low=low, high=high, step=step):
            return IntDistribution(low, high, step=step)
        case FloatRange(low=low, high=high, step=step):
            return FloatDistribution(low, high, step=step)
        case Choices(values=values):
            return CategoricalDistribution(values)
    raise AssertionError(dim)


def _native(dim: Dimension, value: ParamValue) -> ParamValue:
    """A trial's value as the parameter's own type (Optuna hands back numpy scalars)."""
    if isinstance(dim, IntRange):
        return int(value)
    if isinstance(dim, FloatRange):
        return float(value)
    return value


def _dimension_of(spec: ParameterSpec, where: str = "search.space") -> Dimension:
    if spec.type == "bool":
        return Choices([False, True])
    if spec.minimum is None or spec.maximum is None:
        raise InvalidRequest(
            where,
            f"parameter {spec.name!r} has no bounds in the strategy's config; give its range"
            " in search.space or fix it in params",
        )
    if spec.type == "int":
        step = int(spec.step) if spec.step is not None else 1
        return IntRange(int(spec.minimum), int(spec.maximum), max(step, 1))
    return FloatRange(float(spec.minimum), float(spec.maximum), spec.step)


def _unknown(name: str, specs: Mapping[str, ParameterSpec], where: str) -> InvalidRequest:
    return InvalidRequest(
        f"{where}.{name}", f"expected one of the parameters {', '.join(specs) or '(none)'}"
    )


def _choices_of(grid: object, specs: Mapping[str, ParameterSpec]) -> dict[str, Dimension]:
    if not isinstance(grid, Mapping) or not grid:
        raise InvalidRequest("grid", f"expected an object of lists of values, got {grid!r}")
    dims: dict[str, Dimension] = {}
    for name, values in grid.items():
        if name not in specs:
            raise _unknown(name, specs, "grid")
        if not isinstance(values, list) or not values:
            raise InvalidRequest(f"grid.{name}", f"expected a non-empty list, got {values!r}")
        dims[name] = Choices(list(dict.fromkeys(values)))
    return dims


def _space_of(space: object, specs: Mapping[str, ParameterSpec]) -> dict[str, Dimension]:
    if not isinstance(space, Mapping) or not space:
        expected = 'an object such as {"fast": {"min": 5, "max": 50, "step": 5}}'
        raise InvalidRequest("search.space", f"expected {expected}, got {space!r}")
    dims: dict[str, Dimension] = {}
    for name, given in space.items():
        where = f"search.space.{name}"
        if name not in specs:
            raise _unknown(name, specs, "search.space")
        spec = specs[name]
        if isinstance(given, list) and given:
            dims[name] = Choices(list(dict.fromkeys(given)))
            continue
        if not isinstance(given, Mapping) or not set(given) <= {"min", "max", "step"}:
            expected = "a list of values or an object with min, max and optionally step"
            raise InvalidRequest(where, f"expected {expected}, got {given!r}")
        if spec.type == "bool":
            raise InvalidRequest(where, "expected a list of values for a bool parameter")
        full = _dimension_of(spec, where)
        assert isinstance(full, IntRange | FloatRange)
        low, high = given.get("min", full.low), given.get("max", full.high)
        step = given.get("step", full.step)
        numbers = (low, high) if step is None else (low, high, step)
        kind = int if spec.type == "int" else (int, float)
        if any(isinstance(v, bool) or not isinstance(v, kind) for v in numbers):
            raise InvalidRequest(where, f"expected {spec.type} min, max and step, got {given!r}")
        if not full.low <= low <= high <= full.high:
            raise InvalidRequest(
                where, f"expected {full.low} <= min <= max <= {full.high}, got {low} and {high}"
            )
        if step is not None and step <= 0:
            raise InvalidRequest(where, f"expected a step above 0, got {step}")
        if spec.type == "int":
            dims[name] = IntRange(int(low), int(high), int(step or 1))
        else:
            dims[name] = FloatRange(float(low), float(high), None if step is None else float(step))
    return dims
