"""`Backoff`: exponential delays with jitter, for reconnecting and retrying.

Attempt n (from 0) waits a random time between half and all of `min(cap, base * 2**n)`
("equal jitter"): growing waits spare a struggling exchange or server, and the random half
keeps many clients that failed together from retrying together. Pure: the random source is
passed in.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass(slots=True)
class Backoff:
    base_s: float
    cap_s: float
    rng: random.Random = field(default_factory=random.Random)
    attempts: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.base_s <= self.cap_s:
            raise ValueError(
                f"backoff needs 0 < base <= cap, got base {self.base_s} s, cap {self.cap_s} s"
            )

    def next_delay(self) -> float:
        """The wait before the next attempt, in seconds; each call counts one attempt."""
        ceiling: float = min(self.cap_s, self.base_s * 2 ** min(self.attempts, 60))
        self.attempts += 1
        return ceiling / 2 + self.rng.uniform(0, ceiling / 2)

    def reset(self) -> None:
        """After a success: the next failure waits the shortest time again."""
        self.attempts = 0
