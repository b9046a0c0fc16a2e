"""Replay pacing, checked against a fake clock: each trade goes out when its event time,
divided by the speed, says, never early and at most a tick late; `max` never waits."""

from __future__ import annotations

from flows.replay import MAX_TRADES_PER_MESSAGE, replay_trades
from market.messages import Trade

S = 1_000_000_000
MS = 1_000_000
T0 = 1_709_337_000 * S


class FakeClock:
    """Wall time that moves only when the replay sleeps."""

    def __init__(self) -> None:
        self.now = 5 * S
        self.sleeps: list[float] = []

    def clock_ns(self) -> int:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += round(seconds * 1e9)


def trades_at(offsets_ms: list[int]) -> list[Trade]:
    return [Trade("binance", "BTC-USDT", T0 + ms * MS, 100.0, 1.0, "buy", str(i + 1))
            for i, ms in enumerate(offsets_ms)]


async def test_trades_go_out_at_their_event_time_over_the_speed_within_a_tick() -> None:
    clock = FakeClock()
    sent: list[tuple[int, list[Trade]]] = []

    async def publish(batch: list[Trade]) -> None:
        sent.append((clock.now, batch))

    offsets = [0, 10, 500, 1000, 1000, 1020, 3000, 10_000]
    speed, tick = 2.0, 0.05
    count, messages = await replay_trades(
        iter(trades_at(offsets)), publish, speed=speed, clock_ns=clock.clock_ns,
        sleep=clock.sleep, tick_s=tick,
    )
    assert (count, messages) == (8, len(sent))
    start = sent[0][0]
    for wall, batch in sent:
        for trade in batch:
            due = start + (trade.ts - T0) / speed
            assert due <= wall < due + tick * S
    assert [t for _, batch in sent for t in batch] == trades_at(offsets)
    # Due at 0, 5, 250, 500, 500, 510, 1500 and 5000 ms: the one due at 5 ms waits for the
    # next tick (50 ms) and the one due at 510 ms for the tick after 500 ms; 10 s of event
    # time take 5 s.
    assert [(wall - start) // MS for wall, _ in sent] == [0, 50, 250, 500, 550, 1500, 5000]
    assert [len(batch) for _, batch in sent] == [1, 1, 1, 2, 1, 1, 1]
    assert sent[-1][0] - start == 5 * S


async def test_max_speed_publishes_full_messages_without_waiting() -> None:
    clock = FakeClock()
    sizes: list[int] = []

    async def publish(batch: list[Trade]) -> None:
        sizes.append(len(batch))

    total = 3 * MAX_TRADES_PER_MESSAGE + 7
    progress: list[int] = []
    count, messages = await replay_trades(
        iter(trades_at(list(range(total)))), publish, speed=None, clock_ns=clock.clock_ns,
        sleep=clock.sleep, progress=progress.append,
    )
    assert (count, messages, sum(progress)) == (total, 4, total)
    assert sizes == [MAX_TRADES_PER_MESSAGE] * 3 + [7]
    assert clock.sleeps == []
