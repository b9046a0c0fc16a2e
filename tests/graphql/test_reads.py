"""Small reads of a local store run on the event loop; anything else in a worker thread."""

from __future__ import annotations

import threading

import pytest

from graphql_schema.reads import INLINE_ROWS, read_store


class LocalStore:
    local_reads = True


class RemoteStore:
    local_reads = False


@pytest.mark.parametrize(
    ("store", "rows", "inline"),
    [
        (LocalStore(), 1, True),
        (LocalStore(), INLINE_ROWS, True),
        (LocalStore(), INLINE_ROWS + 1, False),
        (RemoteStore(), 1, False),
        (object(), 1, False),  # a store that does not say is not assumed local
    ],
)
async def test_only_small_reads_of_a_local_store_stay_on_the_event_loop(
    store: object, rows: int, inline: bool
) -> None:
    loop_thread = threading.get_ident()
    ran_in = await read_store(store, threading.get_ident, rows=rows)
    assert (ran_in == loop_thread) is inline


def test_the_embedded_store_is_local_and_questdb_is_not() -> None:
    from db.questdb import QuestDBStore
    from db.sqlite import SqliteStore

    assert SqliteStore.local_reads is True
    assert QuestDBStore.local_reads is False
