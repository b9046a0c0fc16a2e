"""Choosing the store from settings."""

from __future__ import annotations

import pickle
import socket
from functools import partial
from pathlib import Path

import pytest

from db.ilp import pg_url_for
from db.sqlite import SqliteStore
from db.store import StoreError
from server.settings import Settings, SettingsError
from server.stores import open_store


def test_the_default_opens_the_embedded_store_under_the_data_directory(tmp_path: Path) -> None:
    store = open_store(Settings(data_dir=tmp_path))
    assert isinstance(store, SqliteStore)
    assert store.path == tmp_path / "candlegraph.sqlite"
    store.close()


def test_an_opener_pickles_for_processes_that_open_their_own_store(tmp_path: Path) -> None:
    opener = pickle.loads(pickle.dumps(partial(open_store, Settings(data_dir=tmp_path))))
    store = opener()
    store.ping()
    store.close()


def test_questdb_needs_its_url() -> None:
    with pytest.raises(SettingsError, match="CANDLEGRAPH_QUESTDB_URL"):
        Settings.from_env({"CANDLEGRAPH_STORE": "questdb"})


@pytest.mark.parametrize(("http_url", "pg_url"), [
    ("http://127.0.0.1:9000", "postgresql://admin:quest@127.0.0.1:8812/qdb"),
    ("http://reader:s3cret@questdb:9000", "postgresql://reader:s3cret@questdb:8812/qdb"),
    ("https://a%40b:p%2Fw@db.example:9443", "postgresql://a%40b:p%2Fw@db.example:8812/qdb"),
    ("http://[::1]:9000", "postgresql://admin:quest@[::1]:8812/qdb"),
])
def test_the_postgresql_wire_is_found_from_the_ilp_url(http_url: str, pg_url: str) -> None:
    assert pg_url_for(http_url) == pg_url


def test_a_questdb_url_that_is_not_http_is_refused() -> None:
    with pytest.raises(StoreError, match="must look like http://host:9000"):
        pg_url_for("postgresql://127.0.0.1:8812/qdb")


def test_questdb_settings_open_a_questdb_store_and_fail_loudly_when_it_is_down() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = Settings.from_env({
        "CANDLEGRAPH_STORE": "questdb",
        "CANDLEGRAPH_QUESTDB_URL": f"http://127.0.0.1:{port}",
        "CANDLEGRAPH_QUESTDB_PG_URL": f"postgresql://admin:quest@127.0.0.1:{port}/qdb",
    })
    with pytest.raises(StoreError, match=f"ILP/HTTP sender to http://127.0.0.1:{port}"):
        open_store(settings)
