"""What the flow made of a replay's trades (`candlegraph import --replay`).

The flow dead-letters a trade older than its event time (`late`), and its event time is one
clock for all its markets: replayed history meets a flow that a simulator or a live feed also
feeds as nothing but late trades. The replay publishes them all the same, so once it is done
`flow_verdict` waits for the flow to ack the replay's last message, then counts the dead
letters of the replay's market published since it began (the flow publishes a batch's dead
letters before it acks the batch). They are read back from the DEADLETTER stream, at most
`MAX_READ` of them.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import Counter
from dataclasses import dataclass, field

import msgspec
import nats.errors
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from flows.subjects import DEADLETTER_STREAM, DEADLETTER_SUBJECT, FLOW_CONSUMER, TRADES_STREAM
from market.messages import DeadLetter

log = logging.getLogger(__name__)

#: Dead letters read back at most.
MAX_READ = 20_000
_DECODER = msgspec.json.Decoder(DeadLetter)


@dataclass(frozen=True, slots=True)
class FlowVerdict:
    """`flowing`: a flow consumer exists; `acked`: it acked the replay's last message within
    the wait; `reasons`: the replay's dead letters by reason (`capped`: more were not read);
    `first`: the first of them."""

    flowing: bool
    acked: bool
    reasons: dict[str, int] = field(default_factory=dict)
    first: DeadLetter | None = None
    capped: bool = False

    @property
    def dead_letters(self) -> int:
        return sum(self.reasons.values())


async def dead_letter_mark(js: JetStreamContext) -> int:
    """The DEADLETTER stream's last sequence: where a replay's dead letters start after."""
    return int((await js.stream_info(DEADLETTER_STREAM)).state.last_seq)


async def flow_verdict(
    js: JetStreamContext, subject: str, since: int, *, wait_s: float = 30.0,
) -> FlowVerdict:
    """What the flow made of the messages on `subject` published after DEADLETTER's `since`
    (see the module docstring); waits at most `wait_s` for the flow's ack."""
    try:
        last = (await js.get_last_msg(TRADES_STREAM, subject)).seq
    except NotFoundError:
        return FlowVerdict(flowing=True, acked=True)  # nothing was published
    deadline = time.monotonic() + wait_s
    for attempt in itertools.count():
        try:
            info = await js.consumer_info(TRADES_STREAM, FLOW_CONSUMER)
        except NotFoundError:
            return FlowVerdict(flowing=False, acked=False)
        if info.ack_floor is not None and (info.ack_floor.stream_seq or 0) >= (last or 0):
            break
        if time.monotonic() >= deadline:
            return FlowVerdict(flowing=True, acked=False)
        if attempt == 0:
            log.info("waiting up to %.0f s for the flow to take the replayed trades", wait_s)
        await asyncio.sleep(0.1)  # polling the consumer: acks come with the flow's batches
    return await _dead_letters_since(js, subject, since)


async def _dead_letters_since(js: JetStreamContext, subject: str, since: int) -> FlowVerdict:
    end = await dead_letter_mark(js)
    reasons: Counter[str] = Counter()
    first = None
    if end <= since:
        return FlowVerdict(flowing=True, acked=True)
    config = ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                            opt_start_seq=since + 1)
    sub = await js.subscribe(DEADLETTER_SUBJECT, stream=DEADLETTER_STREAM, config=config,
                             ordered_consumer=True)
    read, reached = 0, False
    try:
        while read < MAX_READ and not reached:
            try:
                msg = await sub.next_msg(timeout=10)
            except nats.errors.TimeoutError:
                break  # the rest expired from the stream meanwhile
            read += 1
            reached = msg.metadata.sequence.stream >= end
            try:
                letter = _DECODER.decode(msg.data)
            except msgspec.DecodeError:
                continue  # not one of the flow's
            if letter.subject == subject:
                reasons[letter.reason] += 1
                first = first or letter
    finally:
        await sub.unsubscribe()
    return FlowVerdict(True, True, dict(reasons), first, capped=not reached)
