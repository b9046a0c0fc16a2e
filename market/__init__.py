"""The pure core of CandleGraph, with no I/O: messages, timeframes, candle aggregation and
incremental indicators."""
