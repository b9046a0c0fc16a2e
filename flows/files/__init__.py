"""Reading trade and candle files: Binance public data, Tardis, and generic CSV or Parquet.

`flows.files.reader` opens a file (plain, `.gz` or `.zip`), tells its format
(`flows.files.formats`) and yields its rows in chunks as typed columns, with every bad row
counted by file, line and reason (`flows.files.bad_rows`). What the rows become (candles in
the store, or trades replayed on NATS) is up to `flows.trade_import`, `flows.candle_import`
and `flows.replay`.
"""
