"""The baseline for `market/json_trades.py`: trade messages to columns through msgspec alone.

`MsgspecTradeDecoder` has `TradeDecoder`'s interface and gives the same trades and rejections
(each message through `market.messages.decode_trades`, then `TradeBatch.from_trades`), with
no compiled parser. `bench/flow_throughput.py --decoder msgspec` runs the flow with it, by
starting this module as the flow worker: it swaps the decoder in, then runs the worker as
`candlegraph flow` would. Benchmark code only; the product always uses the compiled path.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import numpy as np

from market.json_trades import DecodedMessages, _on_subject
from market.messages import Rejected, decode_trades
from market.trade_batch import TradeBatch


class MsgspecTradeDecoder:
    def __init__(self, *, max_future_ns: int) -> None:
        self.max_future_ns = max_future_ns

    def decode(
        self, messages: Sequence[tuple[tuple[str, str] | None, bytes]], *, now_ns: int
    ) -> DecodedMessages:
        parts: list[TradeBatch] = []
        rejected: list[tuple[int, Rejected]] = []
        accepted = np.zeros(len(messages), np.int64)
        for m, (key, data) in enumerate(messages):
            trades, problems = decode_trades(data, now_ns=now_ns, max_future_ns=self.max_future_ns)
            trades = _on_subject(key, trades, problems)
            rejected.extend((m, problem) for problem in problems)
            accepted[m] = len(trades)
            if trades:
                parts.append(TradeBatch.from_trades(trades))
        return DecodedMessages(TradeBatch.concat(parts), rejected, accepted, 0)


if __name__ == "__main__":
    import flows.candle_logic
    from server.flow_process import _member_main

    flows.candle_logic.TradeDecoder = MsgspecTradeDecoder  # type: ignore[assignment,misc]  # swaps the decoder class for the benchmark
    sys.exit(_member_main(sys.argv[1:]))
