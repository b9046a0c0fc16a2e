"""Backtests through NautilusTrader: strategies, their registry, the runner and its metrics.

The surface the API and the worker pool use:

- `registry.list_strategies()`, `registry.strategy_info(name)`, `registry.validate_params(name,
  params)`: what exists, each parameter's schema, and checking a user's params.
- `spec.BacktestSpec`: what to run (a JSON-ready msgspec Struct).
- `runner.run_backtest(candles, spec, on_progress=...)` -> `result.BacktestResult`.
- `sweep.run_sweep(candles, spec, grid, rank_by=..., executor=...)` -> `sweep.SweepResult`.
- `errors`: `BacktestInputError` (the user's fault, safe to show) and `BacktestRunError`.

Every other module holds one strategy (`ema_cross`, `rsi_reversion`, ...) or one piece of the
runner (`bars`, `instrument`, `ledger`, `metrics`, `result`).
"""
