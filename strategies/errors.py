"""The errors a backtest raises, in one small tree.

```
BacktestError                  anything that stops a backtest
├── BacktestInputError         the caller's input is wrong; safe to show to the user
│   ├── UnknownStrategyError   no strategy by that name (lists the valid names)
│   ├── ParameterError         a strategy parameter: unknown, wrong type, out of bounds
│   │   └── ParameterConflictError  values fine alone but forbidden together (fast >= slow)
│   ├── SpecError              a field of the backtest spec (fees, balance, symbol...)
│   ├── CandleDataError        the candles cannot be run (empty, unsorted, bad prices...)
│   └── InvalidRequest         a request to queue a backtest or sweep, naming its field
├── UnknownBacktest            no backtest or sweep has this id
└── BacktestRunError           the engine failed on valid input: a bug or a limit, not the user
```

Every input error names where the problem is, what was expected and what arrived.
`InvalidRequest.field` is in the request's own snake_case terms (`strategy`, `params.fast`,
`sizing.quantity`, `end`, `range`, `grid.fast`, `rank_by`...), so the API can name the
argument the client sent.
`BacktestInputError` is a `ValueError`, so msgspec turns one raised while decoding a spec into
its own `ValidationError` with the same message.
"""

from __future__ import annotations


class BacktestError(Exception):
    """Anything that stops a backtest."""


class BacktestInputError(BacktestError, ValueError):
    """The caller's input is wrong; the message is meant for the user."""


class UnknownStrategyError(BacktestInputError):
    """No strategy by that name."""

    def __init__(self, name: str, valid: list[str]) -> None:
        self.name = name
        self.valid = valid
        super().__init__(f"unknown strategy {name!r}; valid strategies: {', '.join(valid)}")


class ParameterError(BacktestInputError):
    """A strategy parameter is unknown, of the wrong type or out of bounds."""

    def __init__(self, strategy: str, parameter: str, expected: str, got: object) -> None:
        self.strategy = strategy
        self.parameter = parameter
        self.expected = expected
        self.got = got
        super().__init__(
            f"strategy {strategy!r} parameter {parameter!r}: expected {expected}, got {got!r}"
        )


class ParameterConflictError(ParameterError):
    """Values each within bounds that the strategy forbids together (e.g. fast >= slow)."""


class SpecError(BacktestInputError):
    """A field of the backtest spec holds an impossible value."""

    def __init__(self, field: str, expected: str, got: object) -> None:
        self.field = field
        self.expected = expected
        self.got = got
        super().__init__(f"backtest spec field {field!r}: expected {expected}, got {got!r}")


class CandleDataError(BacktestInputError):
    """The candles handed to a backtest cannot be run."""


class InvalidRequest(BacktestInputError):
    """A request to queue a backtest or a sweep that cannot run, and which field is wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class UnknownBacktest(BacktestError, LookupError):
    """No backtest or sweep has this id."""

    def __init__(self, id: str) -> None:
        super().__init__(f"no backtest or sweep with id {id!r}")
        self.id = id


class BacktestRunError(BacktestError):
    """The engine failed on input that passed validation."""
