"""The web client as files the server serves: the page at `/` with its content policy, modules
that import only each other and the vendored libraries, and those libraries as recorded."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import httpx

from server.app import STATIC
from tests.servers import LiveApi

WEB = STATIC / "web"


def test_the_root_serves_the_client_and_graphql_still_serves_graphiql(
    history_site: LiveApi
) -> None:
    page = httpx.get(f"{history_site.url}/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert '<script type="module" src="/web/app.js">' in page.text
    graphiql = httpx.get(f"{history_site.url}/graphql", headers={"accept": "text/html"})
    assert "/graphiql-assets/graphiql.min.js" in graphiql.text
    module = httpx.get(
        f"{history_site.url}/web/vendor/lightweight-charts.standalone.production.mjs")
    assert module.status_code == 200
    assert module.headers["content-type"].startswith("text/javascript")


def test_every_module_imports_files_the_server_has_and_nothing_from_elsewhere() -> None:
    modules = sorted(WEB.glob("*.js"))
    assert modules
    for module in modules:
        for target in re.findall(r"""^import[^'"]*['"]([^'"]+)['"]""", module.read_text(), re.M):
            assert target.startswith("./"), f"{module.name} imports {target}"
            assert (WEB / target).is_file(), f"{module.name} imports a missing {target}"
    html = (WEB / "index.html").read_text()
    preloaded = set(re.findall(r'<link rel="modulepreload" href="/web/([^"]+)">', html))
    vendored = {f"vendor/{p.name}" for p in (WEB / "vendor").iterdir()
                if p.suffix in {".js", ".mjs"}}
    assert preloaded == {m.name for m in modules} | vendored
    for target in re.findall(r'(?:src|href)="([^"]+)"', html):
        if target.startswith("/web/"):
            assert (WEB / target.removeprefix("/web/")).is_file(), target
        else:  # the attribution link, GraphiQL, the blank icon and the views
            assert target in {"https://www.tradingview.com/", "/graphql", "data:,"} or \
                target.startswith("#/"), target


def test_the_vendored_libraries_match_their_recorded_checksums() -> None:
    vendor = WEB / "vendor"
    lines = (vendor / "SHA256SUMS").read_text().splitlines()
    recorded = {name: digest for digest, name in (line.split() for line in lines)}
    served = {p.name for p in vendor.iterdir() if p.suffix in {".js", ".mjs"}}
    assert served == set(recorded)
    for name, expected in recorded.items():
        assert hashlib.sha256(Path(vendor / name).read_bytes()).hexdigest() == expected, name
