"""API keys, callers, rates and token buckets, and their settings, without a server."""

from __future__ import annotations

import pytest

from graphql_schema.errors import RateLimited, Unauthenticated
from server.auth import ApiKeys, Gate, digest, main
from server.ratelimit import Rate, RateError, TokenBuckets
from server.settings import Settings, SettingsError

KEY = "cg_test_key"
ENTRY = f"alice:{digest(KEY)}"


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("text", "count", "period_s"),
    [("10/min", 10, 60.0), ("5/s", 5, 1.0), ("100/hour", 100, 3600.0), ("3/10s", 3, 10.0),
     (" 2 / minute ", 2, 60.0)],
)
def test_a_rate_reads_as_count_per_period(text: str, count: int, period_s: float) -> None:
    assert Rate.parse(text) == Rate(count=count, period_s=period_s)


@pytest.mark.parametrize("text", ["", "10", "ten/min", "10/fortnight", "0/min", "-1/s"])
def test_a_malformed_rate_says_what_is_expected(text: str) -> None:
    with pytest.raises(RateError, match=r"<count>/<unit>|at least 1"):
        Rate.parse(text)


def test_a_bucket_allows_a_burst_then_refills_at_the_rate() -> None:
    clock = Clock()
    buckets = TokenBuckets(Rate.parse("2/10s"), clock=clock)
    assert [buckets.take("a"), buckets.take("a")] == [0.0, 0.0]
    assert buckets.take("a") == pytest.approx(5.0)  # one token comes back every 5 s
    assert buckets.take("b") == 0.0  # every key has its own bucket
    clock.now += 4.0
    assert buckets.take("a") == pytest.approx(1.0)
    clock.now += 1.0
    assert buckets.take("a") == 0.0
    clock.now += 1000.0
    assert [buckets.take("a") for _ in range(3)][-1] > 0  # refills only up to its capacity


def test_keys_are_recognised_by_their_digest_only() -> None:
    keys = ApiKeys([ENTRY, f"bob:{digest('other')}"])
    assert keys.name_of(KEY) == "alice"
    assert keys.name_of("other") == "bob"
    assert keys.name_of(KEY + "x") is None
    assert keys.name_of(digest(KEY)) is None  # the digest is not a key


def test_a_caller_is_refused_for_what_it_may_not_do() -> None:
    gate = Gate(ApiKeys([ENTRY]), public_queries=True, mutation_rate=Rate.parse("1/min"),
                clock=Clock())
    anonymous = gate.caller(None)
    anonymous.authorize("query")
    for operation in ("mutation", "subscription"):
        with pytest.raises(Unauthenticated, match=f"a {operation} needs an API key"):
            anonymous.authorize(operation)
    alice = gate.caller(f"bearer {KEY}")  # the scheme is case-insensitive
    alice.authorize("subscription")
    alice.authorize("mutation")
    with pytest.raises(RateLimited) as limited:
        alice.authorize("mutation")
    assert limited.value.extensions == {"code": "RATE_LIMITED", "retryAfter": 60}
    wrong = gate.caller("Bearer cg_nope")
    with pytest.raises(Unauthenticated, match="not recognised"):
        wrong.authorize("query")  # a wrong key is refused even where none is needed


def test_without_keys_everything_is_open_whatever_is_presented() -> None:
    gate = Gate(ApiKeys([]), public_queries=False, mutation_rate=Rate.parse("1/min"))
    caller = gate.caller("Bearer anything")
    for _ in range(3):
        caller.authorize("mutation")
    caller.authorize("query")


def test_connection_params_carry_a_key_for_websockets() -> None:
    gate = Gate(ApiKeys([ENTRY]), public_queries=False, mutation_rate=Rate.parse("1/min"))
    caller = gate.caller(None)
    caller.present_connection_params({"Authorization": f"Bearer {KEY}"})
    caller.authorize("subscription")
    assert caller.name == "alice"


def test_api_key_settings_are_validated_without_echoing_the_value() -> None:
    assert Settings.from_env({"CANDLEGRAPH_API_KEYS": ENTRY}).api_keys == (ENTRY,)
    with pytest.raises(SettingsError, match="entry 1 is not name:") as error:
        Settings.from_env({"CANDLEGRAPH_API_KEYS": "cg_a_real_key_pasted_by_mistake"})
    assert "cg_a_real_key" not in str(error.value)
    with pytest.raises(SettingsError, match="names must be unique"):
        Settings(api_keys=(ENTRY, ENTRY))


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CANDLEGRAPH_MUTATION_RATE": "lots"}, "mutation_rate: expected <count>/<unit>"),
        ({"CANDLEGRAPH_CORS_ORIGINS": "charts.example.com"}, "cors_origins: expected"),
        ({"CANDLEGRAPH_PUBLIC_QUERIES": "maybe"}, "expected true or false"),
        ({"CANDLEGRAPH_LOG_FORMAT": "xml"}, "log_format must be"),
        ({"CANDLEGRAPH_SUBSCRIPTION_BUFFER": "0"}, "subscription_buffer must be"),
    ],
)
def test_operations_settings_say_what_was_expected(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(env)


def test_operations_settings_survive_the_trip_to_a_child_process() -> None:
    settings = Settings(api_keys=(ENTRY,), public_queries=False, mutation_rate="5/s",
                        cors_origins=("https://a.example", "http://localhost:3000"),
                        log_format="text", subscription_buffer=64)
    assert Settings.from_env(settings.to_env()) == settings


def test_a_new_key_is_printed_with_its_entry(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ci-bot"]) == 0
    out = capsys.readouterr().out
    key = out.split("key (give it to the client; it is not stored): ")[1].split()[0]
    entry = out.split("entry for CANDLEGRAPH_API_KEYS: ")[1].split()[0]
    assert entry == f"ci-bot:{digest(key)}"
    assert Settings(api_keys=(entry,)).api_keys == (entry,)
