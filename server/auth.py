"""API keys: who may run mutations, subscriptions and (optionally) queries.

Keys are configured by name with the SHA-256 digest of the key, never the key itself:
`CANDLEGRAPH_API_KEYS=alice:<64 hex>,ci:<64 hex>`. `python -m server.auth NAME` makes a new
random key and prints it with its entry. Clients send `Authorization: Bearer <key>`: as an HTTP
header, on the websocket upgrade request, or in the websocket `connection_init` payload
(`{"Authorization": "Bearer <key>"}`). A presented key is hashed and compared with every
configured digest in constant time (`hmac.compare_digest`).

With no keys configured, everything is open. With keys, mutations and subscriptions need one,
queries too unless `public_queries`, and each key may run at most `mutation_rate` mutations
(a token bucket per key).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sys
import time
from collections.abc import Callable, Mapping, Sequence

from graphql_schema.errors import RateLimited, Unauthenticated
from server.ratelimit import Rate, TokenBuckets


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class ApiKeys:
    """Configured `name:sha256-hex` entries (validated by `Settings`)."""

    def __init__(self, entries: Sequence[str]) -> None:
        self._digests = [
            (name, bytes.fromhex(hexdigest))
            for name, _, hexdigest in (entry.partition(":") for entry in entries)
        ]

    def __bool__(self) -> bool:
        return bool(self._digests)

    def name_of(self, key: str) -> str | None:
        """The name of `key` if it is configured; every digest is compared, match or not."""
        presented = hashlib.sha256(key.encode()).digest()
        found = None
        for name, expected in self._digests:
            if hmac.compare_digest(presented, expected):
                found = name
        return found


class Gate:
    """The access policy of one server; `caller()` makes the `Access` of one request."""

    def __init__(
        self,
        keys: ApiKeys,
        *,
        public_queries: bool,
        mutation_rate: Rate,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.keys = keys
        self.public_queries = public_queries
        self.mutation_rate = mutation_rate
        self._buckets = TokenBuckets(mutation_rate, clock=clock)

    def caller(self, authorization: str | None) -> Caller:
        caller = Caller(self)
        if authorization is not None:
            caller.present(authorization)
        return caller

    def take_mutation(self, name: str) -> float:
        return self._buckets.take(name)


class Caller:
    """Who sends one HTTP request or holds one websocket: anonymous, a key's name, or refused."""

    def __init__(self, gate: Gate) -> None:
        self._gate = gate
        self.name: str | None = None
        self.refused: str | None = None  # why presented credentials were not accepted

    def present(self, authorization: str) -> None:
        """Take `Bearer <key>` credentials; an unknown key marks the caller refused."""
        if not self._gate.keys:
            return  # nothing to check against: everything is open
        scheme, _, key = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            self.name, self.refused = None, "expected the header Authorization: Bearer <key>"
            return
        self.name = self._gate.keys.name_of(key.strip())
        self.refused = None if self.name else "the API key is not recognised"

    def present_connection_params(self, params: Mapping[str, object] | None) -> None:
        """Take credentials from a websocket's `connection_init` payload, if it has any."""
        for field in ("Authorization", "authorization"):
            value = (params or {}).get(field)
            if isinstance(value, str):
                self.present(value)
                return

    def authorize(self, operation: str) -> None:
        gate = self._gate
        if not gate.keys:
            return
        if self.refused is not None:
            raise Unauthenticated(self.refused)
        if operation == "query" and gate.public_queries:
            return
        if self.name is None:
            raise Unauthenticated(
                f"a {operation} needs an API key: send the header Authorization: Bearer <key>"
            )
        if operation == "mutation":
            wait_s = gate.take_mutation(self.name)
            if wait_s > 0:
                raise RateLimited(
                    f"key {self.name!r} may run {gate.mutation_rate.count} mutations per "
                    f"{gate.mutation_rate.period_s:g} s; retry in {wait_s:.1f} s",
                    retry_after_s=wait_s,
                )


def main(argv: Sequence[str]) -> int:
    """`python -m server.auth NAME`: a new random key and its `CANDLEGRAPH_API_KEYS` entry."""
    if len(argv) != 1 or not argv[0].replace("_", "").replace("-", "").isalnum():
        print("usage: python -m server.auth NAME   (letters, digits, - and _)", file=sys.stderr)
        return 2
    key = "cg_" + secrets.token_urlsafe(32)
    print(f"key (give it to the client; it is not stored): {key}")
    print(f"entry for CANDLEGRAPH_API_KEYS: {argv[0]}:{digest(key)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
