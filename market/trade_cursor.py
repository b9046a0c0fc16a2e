"""`TradeCursor`: the last trade of one market a feed has taken, to take each trade once.

A feed reads a market from two sources that overlap (a websocket stream and REST pages that
fill its gaps), so it keeps the position of the newest trade it has taken and admits only
trades after it. "After" is by trade id when both ids are decimal integers (exchanges such as
Binance number trades consecutively, so same-millisecond trades are ordered too), else by
time, then by id among the trades of the cursor's millisecond.

The cursor of the last *published* trade is kept durably (a JetStream key-value entry), as
JSON, so a restarted feed resumes from it.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from market.messages import Trade


class CursorState(msgspec.Struct, frozen=True):
    """A cursor as stored: the last trade's time (ns) and id, and every id taken at that time."""

    ts: int
    id: str
    ids_at_ts: tuple[str, ...] = ()


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(CursorState)


def _number(trade_id: str) -> int | None:
    return int(trade_id) if trade_id.isdecimal() and len(trade_id) < 19 else None


class TradeCursor:
    """The newest trade taken from one market; empty until the first one."""

    def __init__(self, state: CursorState | None = None) -> None:
        self.ts = -1
        self.id = ""
        self._number: int | None = None
        self._ids: set[str] = set()
        if state is not None:
            self.ts, self.id = state.ts, state.id
            self._number = _number(state.id)
            self._ids = set(state.ids_at_ts) | {state.id}

    @property
    def empty(self) -> bool:
        return self.ts < 0

    @property
    def number(self) -> int | None:
        """The last id as an integer, when it is one."""
        return self._number

    def is_new(self, trade: Trade) -> bool:
        """Whether `trade` comes after the cursor."""
        if self.ts < 0:
            return True
        if self._number is not None:
            number = _number(trade.trade_id)
            if number is not None:
                return number > self._number
        if trade.ts != self.ts:
            return trade.ts > self.ts
        return trade.trade_id not in self._ids

    def admit(self, trades: Iterable[Trade]) -> list[Trade]:
        """The trades after the cursor, in order; the cursor moves past each one taken."""
        taken = []
        for trade in trades:
            if self.is_new(trade):
                self._take(trade)
                taken.append(trade)
        return taken

    def _take(self, trade: Trade) -> None:
        if trade.ts != self.ts:
            self._ids = set()
        self.ts = trade.ts
        self.id = trade.trade_id
        self._number = _number(trade.trade_id)
        self._ids.add(trade.trade_id)

    def state(self) -> CursorState:
        return CursorState(self.ts, self.id, tuple(sorted(self._ids - {self.id})))

    def encode(self) -> bytes:
        return _encoder.encode(self.state())

    @classmethod
    def decode(cls, data: bytes) -> TradeCursor:
        """A cursor from `encode`'s JSON; `msgspec.DecodeError` when it is not one."""
        return cls(_decoder.decode(data))
