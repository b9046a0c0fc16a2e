"""Bytewax dataflows, their NATS source and sinks, and the trade feeds (simulator, replay, ccxt)."""
