"""The stores under test: SQLite always; QuestDB when `CANDLEGRAPH_QUESTDB_URL` names a server.

The QuestDB leg needs both variables (see README, "QuestDB"):
`CANDLEGRAPH_QUESTDB_URL=http://127.0.0.1:9000` (ILP over HTTP) and
`CANDLEGRAPH_QUESTDB_PG_URL=postgresql://admin:quest@127.0.0.1:8812/qdb` (reads). Each test gets
its own tables (a fresh name prefix), dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from db.sqlite import SqliteStore
from db.store import Store

StoreFactory = Callable[[], Store]


def _questdb_factory(prefix: str) -> StoreFactory:
    from db.questdb import QuestDBStore

    http_url = os.environ["CANDLEGRAPH_QUESTDB_URL"]
    pg_url = os.environ.get("CANDLEGRAPH_QUESTDB_PG_URL", "")
    if not pg_url:
        pytest.fail("CANDLEGRAPH_QUESTDB_URL is set but CANDLEGRAPH_QUESTDB_PG_URL is not")
    return lambda: QuestDBStore(http_url, pg_url, table_prefix=prefix)


@pytest.fixture(params=["sqlite", "questdb"])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """Opens a store over the same tables each time it is called (for writer/reader pairs)."""
    opened: list[Store] = []
    if request.param == "sqlite":
        make: StoreFactory = lambda: SqliteStore(tmp_path / "store.sqlite")  # noqa: E731
    else:
        if not os.environ.get("CANDLEGRAPH_QUESTDB_URL"):
            pytest.skip(
                "QuestDB leg: set CANDLEGRAPH_QUESTDB_URL (ILP/HTTP, e.g. http://127.0.0.1:9000)"
                " and CANDLEGRAPH_QUESTDB_PG_URL (e.g. postgresql://admin:quest@127.0.0.1:8812/qdb)"
                " to run it against a QuestDB server"
            )
        make = _questdb_factory(f"t{uuid.uuid4().hex[:12]}_")

    def factory() -> Store:
        store = make()
        opened.append(store)
        return store

    yield factory
    if request.param == "questdb" and opened:
        opened[0].drop_tables()  # type: ignore[attr-defined]
    for store in opened:
        store.close()


@pytest.fixture
def store(open_store: StoreFactory) -> Store:
    return open_store()
