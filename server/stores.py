"""Choosing the store from settings: the one place that knows the concrete classes."""

from __future__ import annotations

from db.sqlite import SqliteStore
from db.store import Store
from server.settings import Settings, SettingsError


def open_store(settings: Settings) -> Store:
    if settings.store == "embedded":
        return SqliteStore(settings.store_path)
    raise SettingsError(f"store {settings.store!r} is not available in this build")
