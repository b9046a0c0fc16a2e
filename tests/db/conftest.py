"""The stores under test: SQLite always; QuestDB when `CANDLEGRAPH_QUESTDB_URL` names a server.

SQLite runs twice: as it is, and as `HistorySqliteStore`, which writes every candle the way
history is written (`upsert_candle_columns`: blocks of records), so the candle contract holds
for both layouts of the embedded store.

The QuestDB leg runs with `CANDLEGRAPH_QUESTDB_URL=http://admin:quest@127.0.0.1:9000` (ILP over
HTTP, with the user and password); reads go over the PostgreSQL wire on the same host, port
8812, with the same credentials, unless `CANDLEGRAPH_QUESTDB_PG_URL` (e.g.
`postgresql://admin:quest@127.0.0.1:8812/qdb`) says otherwise (see README, "Stores"). Each test
gets its own tables (a fresh name prefix), dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from db.sqlite import SqliteStore
from db.store import Store
from market.candle_columns import CandleColumns
from market.messages import Candle

StoreFactory = Callable[[], Store]


class HistorySqliteStore(SqliteStore):
    """The embedded store, writing every candle as history (blocks of records)."""

    def upsert_candles(self, candles: Sequence[Candle]) -> None:
        markets = sorted({(c.exchange, c.symbol) for c in candles})
        names = sorted({c.timeframe for c in candles})
        self.upsert_candle_columns(CandleColumns.from_candles(candles, markets, names))


def _questdb_factory(prefix: str) -> StoreFactory:
    from db.questdb import QuestDBStore

    http_url = os.environ["CANDLEGRAPH_QUESTDB_URL"]
    pg_url = os.environ.get("CANDLEGRAPH_QUESTDB_PG_URL", "")  # else derived from http_url
    return lambda: QuestDBStore(http_url, pg_url, table_prefix=prefix)


@pytest.fixture(params=["sqlite", "sqlite-blocks", "questdb"])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """Opens a store over the same tables each time it is called (for writer/reader pairs)."""
    opened: list[Store] = []
    if request.param == "sqlite":
        make: StoreFactory = lambda: SqliteStore(tmp_path / "store.sqlite")  # noqa: E731
    elif request.param == "sqlite-blocks":
        make = lambda: HistorySqliteStore(tmp_path / "store.sqlite")  # noqa: E731
    else:
        if not os.environ.get("CANDLEGRAPH_QUESTDB_URL"):
            pytest.skip(
                "QuestDB leg: set CANDLEGRAPH_QUESTDB_URL (ILP/HTTP with its credentials, e.g."
                " http://admin:quest@127.0.0.1:9000; the PostgreSQL wire is then taken on port"
                " 8812 of that host) to run it against a QuestDB server"
            )
        make = _questdb_factory(f"t{uuid.uuid4().hex[:12]}_")

    def factory() -> Store:
        store = make()
        opened.append(store)
        return store

    yield factory
    if request.param == "questdb" and opened:
        opened[0].drop_tables()  # type: ignore[attr-defined]  # the QuestDB store, by the param
    for store in opened:
        store.close()


@pytest.fixture
def store(open_store: StoreFactory) -> Store:
    return open_store()
