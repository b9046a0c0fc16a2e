"""NATS subject and stream names, in one place (ARCHITECTURE.md, "Subjects, streams and
buckets")."""

from __future__ import annotations

TRADES_STREAM = "TRADES"
TRADES_SUBJECTS = "trades.>"
#: The flow's durable consumer of TRADES.
FLOW_CONSUMER = "candles"
DEADLETTER_STREAM = "DEADLETTER"
DEADLETTER_SUBJECT = "deadletter.trades"
FLOW_STATS_SUBJECTS = "stats.flow.*"


def trades_subject(exchange: str, symbol: str) -> str:
    return f"trades.{exchange}.{symbol}"


def candles_subject(exchange: str, symbol: str, timeframe: str) -> str:
    return f"candles.{exchange}.{symbol}.{timeframe}"


def flow_stats_subject(worker: int) -> str:
    return f"stats.flow.{worker}"


def key_of_trades_subject(subject: str) -> tuple[str, str] | None:
    """`trades.<exchange>.<symbol>` → (exchange, symbol); None for any other shape."""
    parts = subject.split(".")
    if len(parts) != 3 or parts[0] != "trades":
        return None
    return parts[1], parts[2]
