"""`WriteBehind`: jobs run in order on its thread; after a failure none runs, and the caller
hears of it."""

from __future__ import annotations

import threading
from functools import partial

import pytest

from flows.write_behind import WriteBehind


def test_jobs_run_in_the_order_given_on_another_thread() -> None:
    ran: list[tuple[int, str]] = []

    def job(i: int) -> None:
        ran.append((i, threading.current_thread().name))

    with WriteBehind(depth=2) as behind:
        for i in range(50):
            behind.submit(partial(job, i))
        behind.wait()
        assert [i for i, _ in ran] == list(range(50))
    assert {name for _, name in ran} == {"write behind"}


def test_submit_blocks_while_depth_jobs_wait() -> None:
    release = threading.Event()
    started = threading.Event()
    behind = WriteBehind(depth=1)

    def first() -> None:
        started.set()
        release.wait(10)

    behind.submit(first)
    assert started.wait(10)
    behind.submit(lambda: None)  # waits in the queue: the queue is now full
    third_in = threading.Event()

    def third() -> None:
        behind.submit(lambda: None)
        third_in.set()

    caller = threading.Thread(target=third)
    caller.start()
    assert not third_in.wait(0.2)  # blocked behind the full queue
    release.set()
    assert third_in.wait(10)
    caller.join(10)
    behind.close()


def test_after_a_failure_later_jobs_are_skipped_and_every_call_raises() -> None:
    ran: list[int] = []
    behind = WriteBehind(depth=4)

    def fail() -> None:
        raise OSError("disk full")

    behind.submit(lambda: ran.append(1))
    behind.submit(fail)
    behind.submit(lambda: ran.append(3))  # queued before the failure is known
    with pytest.raises(OSError, match="disk full"):
        behind.wait()
    assert ran == [1]
    with pytest.raises(OSError, match="disk full"):
        behind.submit(lambda: ran.append(4))
    with pytest.raises(OSError, match="disk full"):
        behind.close()
    assert ran == [1]


def test_an_error_of_the_block_is_not_replaced_by_the_jobs_error() -> None:
    def fail() -> None:
        raise OSError("disk full")

    with pytest.raises(KeyError, match="the caller's"), WriteBehind() as behind:
        behind.submit(fail)
        raise KeyError("the caller's")


def test_the_jobs_error_is_raised_when_the_block_ends() -> None:
    def fail() -> None:
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"), WriteBehind() as behind:
        behind.submit(fail)
    with pytest.raises(RuntimeError, match="closed"):
        behind.submit(lambda: None)
