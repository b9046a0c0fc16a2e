"""Choosing the store from settings: the one place that knows the concrete classes.

`CANDLEGRAPH_STORE=embedded` (the default) opens SQLite under the data directory;
`CANDLEGRAPH_STORE=questdb` opens QuestDB at `CANDLEGRAPH_QUESTDB_URL` (ILP over HTTP; the
PostgreSQL wire on the same host unless `CANDLEGRAPH_QUESTDB_PG_URL` names it). `up`, `serve`,
`flow` and the backtest workers
all open their store here, so they agree. `partial(open_store, settings)` pickles, for
processes (Bytewax workers) that open their own.
"""

from __future__ import annotations

from db.store import Store
from server.settings import Settings, SettingsError


def open_store(settings: Settings) -> Store:
    """Open the store `settings.store` names; raises `StoreError` if it cannot be reached."""
    if settings.store == "embedded":
        from db.sqlite import SqliteStore

        return SqliteStore(settings.store_path)
    if settings.store == "questdb":
        from db.questdb import QuestDBStore

        return QuestDBStore(settings.questdb_url, settings.questdb_pg_url)
    raise SettingsError(f"store must be 'embedded' or 'questdb', got {settings.store!r}")
