"""Backtests through NautilusTrader: everything about what a backtest is, in one package.

How a backtest runs, in order:

- `request`: a client's request (`BacktestRequest`) and every check it must pass, giving the
  `spec.BacktestSpec` to run; `registry` lists the strategies (built in, and the user's, which
  `plugins` finds and imports) and checks their params.
- `sweep`: a parameter sweep's plan (its grid under a cap, the combinations skipped), its
  ranking and the stored `SweepRanking`; `run_serially` runs a plan in this process.
- `search`: RANDOM and TPE parameter search (Optuna, ask-and-tell a batch at a time);
  `folds` and `walkforward`: a walk-forward's fold windows, its result and the stitched
  out-of-sample curve; `walkforward_record.advance` keeps sweeps and walk-forwards up to date
  as their runs end (a search's next batch, a fold's test run, the final result).
- `service.BacktestService`: what every GraphQL server runs: store the record, queue the job
  (`jobs.Job`, through the `jobs.JobQueue` seam), cancel, list, follow progress.
- `attempt.run_attempt`: one delivery of a job in a worker process: claim the record under
  the attempt's number, load the candles, run, store progress and the result, each with a
  compare-and-set so a cancel or a later attempt stops it; `sweep_record` keeps a sweep's
  own record up to date as its runs end.
- `runner.run_backtest(candles, spec)` -> `result.BacktestResult`: the engine itself, with
  `bars`, `instrument`, `ledger` and `metrics` (the figures, computed from the fills).
- `errors`: `BacktestInputError` (the user's fault, safe to show; `InvalidRequest` names the
  request's field) and `BacktestRunError`.

Strategies build on one of two bases: `long_flat.LongFlatStrategy` (long or flat, any
account) or `long_short.LongShortStrategy` (long, short or flat, MARGIN accounts only). Every
other module holds one strategy (`ema_cross`, `donchian_long_short`, ...). The queue and the
worker processes are wired in `server.backtest_queue`, `server.backtest_worker` and
`server.backtest_slots`.
"""
