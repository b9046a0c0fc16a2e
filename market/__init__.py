"""The pure core of CandleGraph: messages, timeframes and candle aggregation, with no I/O."""
