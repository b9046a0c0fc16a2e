"""Stores for candles, indicators and backtests: the `Store` interface and its implementations."""
