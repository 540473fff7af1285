"""Unit tests of the token cache with a fake token source (SSM's version history) and fake clocks."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from api_service.clients import DEFAULT_CLIENT, Client, RateLimit
from api_service.metrics import TokenMetrics
from api_service.token_cache import TokenCache, TokenCheck
from api_service.token_source import ClientParameter, TokenVersion

T0 = 1_800_000_000.0  # wall clock (Unix time) at the start of each test
DEFAULT = Client(DEFAULT_CLIENT)  # the single token's client, without a limit of its own


class FakeClock:
    """A monotonic clock and a wall clock that advance together."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.wall = T0

    def __call__(self) -> float:
        return self.now

    def wall_clock(self) -> float:
        return self.wall

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.wall += seconds


class FakeSource:
    """SSM's parameters: the single token's history, and by client name the path's; `write` adds a version
    stamped with the wall clock, like put_parameter, and `delete` removes a client's parameter."""

    def __init__(self, clock: FakeClock, value: str | None = None, *, single: bool = True) -> None:
        self.clock = clock
        self.single = single
        self.history: list[TokenVersion] = []
        self.path: dict[str, list[TokenVersion]] = {}
        self.insecure: set[str] = set()  # clients whose parameter is a String, not a SecureString
        self.failing = False
        self.calls = 0
        self.gate: asyncio.Event | None = None  # when set, each call waits for it
        if value is not None:
            self.write(value)

    def write(self, value: str, *, at: float | None = None, client: str | None = None) -> None:
        written = datetime.fromtimestamp(self.clock.wall if at is None else at, UTC)
        versions = self.history if client is None else self.path.setdefault(client, [])
        versions.append(TokenVersion(len(versions) + 1, value, written))

    def delete(self, client: str) -> None:
        del self.path[client]

    async def clients(self) -> list[ClientParameter]:
        self.calls += 1
        # What SSM held when the call arrived.
        found = [ClientParameter(DEFAULT_CLIENT, list(self.history), single=True)] if self.single else []
        found += [
            ClientParameter(name, list(versions), secure=name not in self.insecure)
            for name, versions in sorted(self.path.items())
        ]
        if self.gate is not None:
            await self.gate.wait()
        if self.failing:
            raise ConnectionError("ssm unreachable")
        return found


def make_cache(
    source: FakeSource, clock: FakeClock, *, metrics: TokenMetrics | None = None, **overrides: Any
) -> TokenCache:
    settings: dict[str, Any] = {
        "refresh_seconds": 300.0,
        "max_staleness_seconds": 3600.0,
        "rotation_grace_seconds": 60.0,
        "early_refresh_seconds": 5.0,
    }
    settings.update(overrides)
    return TokenCache(source, clock=clock, wall_clock=clock.wall_clock, metrics=metrics, **settings)


def early(registry: CollectorRegistry, outcome: str) -> float | None:
    return registry.get_sample_value("email_ingest_token_early_refreshes_total", {"outcome": outcome})


async def test_nothing_loaded_means_unavailable_not_invalid() -> None:
    clock = FakeClock()
    cache = make_cache(FakeSource(clock, "secret"), clock)
    assert cache.check("secret") is TokenCheck.UNAVAILABLE
    assert cache.check(None) is TokenCheck.UNAVAILABLE


async def test_valid_and_invalid_tokens() -> None:
    clock = FakeClock()
    cache = make_cache(FakeSource(clock, "secret"), clock)
    assert await cache.refresh()
    assert cache.check("secret") == DEFAULT
    assert cache.check("secret ") is TokenCheck.INVALID
    assert cache.check("") is TokenCheck.INVALID
    assert cache.check(None) is TokenCheck.INVALID
    assert cache.check("s" * 10_000) is TokenCheck.INVALID


async def test_failed_refresh_keeps_the_last_good_token_until_stale() -> None:
    clock = FakeClock()
    source = FakeSource(clock, "secret")
    registry = CollectorRegistry()
    cache = make_cache(source, clock, metrics=TokenMetrics(registry), max_staleness_seconds=100.0)
    assert await cache.refresh()
    source.failing = True
    clock.advance(99)
    assert not await cache.refresh()
    assert cache.check("secret") == DEFAULT
    assert registry.get_sample_value("email_ingest_token_refreshes_total", {"outcome": "failure"}) == 1
    assert registry.get_sample_value("email_ingest_token_age_seconds") == pytest.approx(99)
    clock.advance(2)
    assert cache.check("secret") is TokenCheck.UNAVAILABLE
    assert registry.get_sample_value("email_ingest_token_loaded") == 0
    source.failing = False
    assert await cache.refresh()
    assert cache.check("secret") == DEFAULT
    assert registry.get_sample_value("email_ingest_token_loaded") == 1


async def test_an_empty_latest_version_is_a_failed_refresh() -> None:
    clock = FakeClock()
    cache = make_cache(FakeSource(clock, ""), clock)
    assert not await cache.refresh()
    assert cache.check("") is TokenCheck.UNAVAILABLE
    assert not await make_cache(FakeSource(clock), clock).refresh(), "no version at all"


async def test_the_previous_version_lasts_until_the_next_was_written_plus_the_grace() -> None:
    clock = FakeClock()
    source = FakeSource(clock, "old")
    cache = make_cache(source, clock, rotation_grace_seconds=60.0)
    assert await cache.refresh()
    source.write("new")  # at T0
    clock.advance(50)  # this pod notices only 50 s later: the grace still counts from the write
    assert await cache.refresh()
    assert cache.check("new") == DEFAULT
    assert cache.check("old") == DEFAULT
    clock.advance(9.9)
    assert cache.check("old") == DEFAULT
    clock.advance(0.2)  # T0 + 60.1
    assert cache.check("old") is TokenCheck.INVALID
    assert cache.check("new") == DEFAULT


async def test_pods_started_at_different_times_accept_the_same_tokens() -> None:
    clock = FakeClock()
    source = FakeSource(clock)
    source.write("v1", at=T0 - 1000)
    source.write("v2", at=T0 - 100)  # v1 valid until T0 - 100 + 150 = T0 + 50
    source.write("v3", at=T0 - 20)  # v2 valid until T0 + 130
    early_pod = make_cache(source, clock, rotation_grace_seconds=150.0)
    clock.advance(-200)  # the early pod loaded before v2 and v3 existed, then refreshed
    source.history, full = source.history[:1], source.history
    assert await early_pod.refresh()
    clock.advance(200)
    source.history = full
    assert await early_pod.refresh()
    late_pod = make_cache(source, clock, rotation_grace_seconds=150.0)
    assert await late_pod.refresh()  # a pod started after every rotation
    for moment, expected in ((0, {"v1", "v2", "v3"}), (50.5, {"v2", "v3"}), (130.5, {"v3"})):
        clock.wall = T0 + moment
        for pod in (early_pod, late_pod):
            accepted = {token for token in ("v1", "v2", "v3", "v0") if pod.check(token) == DEFAULT}
            assert accepted == expected, (moment, pod is late_pod)


async def test_only_versions_inside_their_grace_are_kept() -> None:
    clock = FakeClock()
    source = FakeSource(clock)
    for index in range(100):  # SSM's maximum: one rotation a second for 100 s
        source.write(f"v{index}", at=T0 - 100 + index)
    cache = make_cache(source, clock, rotation_grace_seconds=10.0)
    assert await cache.refresh()
    # v_i is valid until v_{i+1} was written + 10 s = T0 + i - 89: v90..v98 still are (v89 ends right now).
    assert cache.kept_versions == 1 + 9
    assert cache.check("v99") == DEFAULT
    assert cache.check("v90") == DEFAULT
    assert cache.check("v89") is TokenCheck.INVALID
    assert cache.check("v0") is TokenCheck.INVALID


async def test_a_rollback_written_as_a_new_version_is_the_latest() -> None:
    clock = FakeClock()
    source = FakeSource(clock, "a")
    source.write("b")
    source.write("a")  # the operator writes the previous value back
    cache = make_cache(source, clock, rotation_grace_seconds=0.0)
    assert await cache.refresh()
    clock.advance(1)
    assert cache.check("a") == DEFAULT
    assert cache.check("b") is TokenCheck.INVALID


async def test_an_unknown_token_triggers_one_early_refresh_per_interval() -> None:
    clock = FakeClock()
    source = FakeSource(clock, "old")
    registry = CollectorRegistry()
    cache = make_cache(source, clock, metrics=TokenMetrics(registry), early_refresh_seconds=5.0)
    assert await cache.refresh()
    source.write("new")
    assert cache.check("new") is TokenCheck.INVALID
    assert await cache.recheck("new") == DEFAULT
    assert source.calls == 2
    assert early(registry, "success") == 1
    for _ in range(50):  # a flood of wrong tokens: no SSM call until the interval has passed
        assert await cache.recheck("wrong") is TokenCheck.INVALID
    assert source.calls == 2
    assert early(registry, "rate_limited") == 50
    clock.advance(5.0)
    assert await cache.recheck("wrong") is TokenCheck.INVALID
    assert source.calls == 3
    assert early(registry, "success") == 2
    assert registry.get_sample_value("email_ingest_token_refreshes_total", {"outcome": "success"}) == 3


async def test_no_token_or_an_empty_one_never_triggers_a_refresh() -> None:
    clock = FakeClock()
    source = FakeSource(clock, "secret")
    cache = make_cache(source, clock)
    assert await cache.refresh()
    assert await cache.recheck(None) is TokenCheck.INVALID
    assert await cache.recheck("") is TokenCheck.INVALID
    assert source.calls == 1


async def test_concurrent_unknown_tokens_share_one_early_refresh() -> None:
    clock = FakeClock()
    source = FakeSource(clock, "old")
    registry = CollectorRegistry()
    cache = make_cache(source, clock, metrics=TokenMetrics(registry))
    assert await cache.refresh()
    source.write("new")
    source.gate = asyncio.Event()
    waiters = [asyncio.create_task(cache.recheck("new" if i % 2 else "wrong")) for i in range(20)]
    await asyncio.sleep(0.01)
    assert source.calls == 2, "one SSM call for all of them"
    assert not any(waiter.done() for waiter in waiters), "they wait for it"
    source.gate.set()
    verdicts = await asyncio.gather(*waiters)
    assert verdicts == [DEFAULT if i % 2 else TokenCheck.INVALID for i in range(20)]
    assert source.calls == 2
    assert early(registry, "success") == 1
    assert early(registry, "rate_limited") == 0


async def test_the_wait_for_an_early_refresh_is_bounded() -> None:
    clock = FakeClock()
    source = FakeSource(clock, "old")
    cache = make_cache(source, clock, early_refresh_wait_seconds=0.05)
    assert await cache.refresh()
    source.write("new")
    source.gate = asyncio.Event()  # SSM hangs
    loop = asyncio.get_running_loop()
    began = loop.time()
    assert await cache.recheck("new") is TokenCheck.INVALID
    assert loop.time() - began < 1.0
    source.gate.set()  # the refresh was not abandoned: it lands, and the next request is accepted
    for _ in range(100):
        await asyncio.sleep(0.01)
        if cache.check("new") == DEFAULT:
            break
    assert cache.check("new") == DEFAULT
    await cache.stop()


async def test_a_failed_early_refresh_keeps_the_tokens_and_is_counted() -> None:
    clock = FakeClock()
    source = FakeSource(clock, "secret")
    registry = CollectorRegistry()
    cache = make_cache(source, clock, metrics=TokenMetrics(registry))
    assert await cache.refresh()
    source.failing = True
    assert await cache.recheck("wrong") is TokenCheck.INVALID
    assert cache.check("secret") == DEFAULT
    assert early(registry, "failure") == 1


async def test_an_older_overlapping_load_does_not_undo_a_newer_one() -> None:
    clock = FakeClock()
    source = FakeSource(clock, "old")
    cache = make_cache(source, clock, rotation_grace_seconds=0.0)
    assert await cache.refresh()
    slow_ssm = source.gate = asyncio.Event()
    background = asyncio.create_task(cache.refresh())  # a regular refresh reads SSM before the rotation...
    await asyncio.sleep(0.01)
    source.write("new")
    source.gate = None
    clock.advance(1)
    assert await cache.recheck("new") == DEFAULT  # ...an early one after it, and answers first
    slow_ssm.set()
    assert await background
    assert cache.check("new") == DEFAULT, "the older view of SSM was not applied"
    assert cache.check("old") is TokenCheck.INVALID


async def test_background_refresh_retries_quickly_until_the_first_load() -> None:
    source = FakeSource(FakeClock(), "secret")
    source.failing = True
    cache = TokenCache(source, refresh_seconds=0.05, max_staleness_seconds=10, rotation_grace_seconds=0)
    await cache.start()
    assert cache.check("secret") is TokenCheck.UNAVAILABLE
    source.failing = False
    for _ in range(100):
        await asyncio.sleep(0.02)
        if cache.check("secret") == DEFAULT:
            break
    assert cache.check("secret") == DEFAULT
    calls = source.calls
    await asyncio.sleep(0.2)
    assert source.calls > calls, "the token is refreshed in the background"
    await cache.stop()


# -- several clients (TOKEN_PARAMETER_PATH) ---------------------------------------------------------------------


def clients_source(clock: FakeClock, *, single: str | None = "secret", **path: str) -> FakeSource:
    source = FakeSource(clock, single, single=single is not None)
    for name, value in path.items():
        source.write(value, client=name)
    return source


async def test_each_token_names_its_client_and_the_single_one_is_default() -> None:
    clock = FakeClock()
    source = clients_source(clock, acme="acme-token", globex='{"token": "globex-token", "rate_limit_rps": 2}')
    cache = make_cache(source, clock)
    assert await cache.refresh()
    assert cache.check("secret") == DEFAULT
    assert cache.check("acme-token") == Client("acme")
    assert cache.check("globex-token") == Client("globex", RateLimit(2.0, 2))
    assert cache.check('{"token": "globex-token", "rate_limit_rps": 2}') is TokenCheck.INVALID, "the JSON is no token"
    assert cache.check("other") is TokenCheck.INVALID
    assert cache.client_names == {"default", "acme", "globex"}


async def test_a_path_without_parameters_is_loaded_and_refuses_every_token() -> None:
    clock = FakeClock()
    cache = make_cache(clients_source(clock, single=None), clock)
    assert await cache.refresh()
    assert cache.usable(), "no client is a state, not an outage: 401, not 503"
    assert cache.check("anything") is TokenCheck.INVALID


async def test_a_deleted_parameter_is_refused_from_the_next_load_and_its_client_forgotten() -> None:
    clock = FakeClock()
    source = clients_source(clock, acme="acme-token", globex="globex-token")
    seen: list[frozenset[str]] = []
    cache = make_cache(source, clock, on_clients=seen.append)
    assert await cache.refresh()
    source.delete("acme")
    assert cache.check("acme-token") == Client("acme"), "until this pod reads SSM again"
    assert await cache.refresh()
    assert cache.check("acme-token") is TokenCheck.INVALID
    assert cache.check("globex-token") == Client("globex")
    assert seen == [frozenset({"default", "acme", "globex"}), frozenset({"default", "globex"})]


async def test_an_unknown_token_revokes_a_deleted_client_before_the_regular_refresh() -> None:
    clock = FakeClock()
    source = clients_source(clock, acme="acme-token")
    cache = make_cache(source, clock, early_refresh_seconds=5.0)
    assert await cache.refresh()
    source.delete("acme")
    assert await cache.recheck("someone-elses-token") is TokenCheck.INVALID  # the early refresh it triggers...
    assert cache.check("acme-token") is TokenCheck.INVALID  # ...read the deletion, long before 300 s
    assert source.calls == 2


async def test_a_new_client_is_accepted_at_once_through_the_early_refresh() -> None:
    clock = FakeClock()
    source = clients_source(clock)
    cache = make_cache(source, clock)
    assert await cache.refresh()
    source.write("new-client-token", client="initech")
    assert await cache.recheck("new-client-token") == Client("initech")


async def test_a_clients_rotation_follows_the_single_tokens_rules() -> None:
    clock = FakeClock()
    source = clients_source(clock, acme="old")
    cache = make_cache(source, clock, rotation_grace_seconds=60.0)
    assert await cache.refresh()
    source.write('{"token": "new", "rate_limit_rps": 1}', client="acme")  # at T0, with a limit of its own
    clock.advance(30)
    assert await cache.refresh()
    limited = Client("acme", RateLimit(1.0, 1))
    assert cache.check("new") == limited
    assert cache.check("old") == limited, "the previous version names the same client, with today's limit"
    clock.advance(30.1)
    assert cache.check("old") is TokenCheck.INVALID
    assert cache.check("new") == limited


async def test_unusable_parameters_are_refused_alone_and_logged_once() -> None:
    clock = FakeClock()
    source = clients_source(
        clock,
        good="good-token",
        empty="",
        broken='{"token": ',
        limitless='{"token": "x", "rate_limit_rps": -1}',
        unauthenticated="reserved-name-token",
        default="path-default-token",  # the single token's name is taken
        mimic="good-token",  # shares a token with `good`, before it by name: it could not be told apart
        plain="plain-text-token",
    )
    source.write("bad-name-token", client="with space")
    source.insecure.add("plain")
    registry = CollectorRegistry()
    cache = make_cache(source, clock, metrics=TokenMetrics(registry))
    with capture_logs() as logs:
        assert await cache.refresh()
        assert await cache.refresh()
    assert cache.client_names == {"default", "good"}
    assert cache.check("good-token") == Client("good")
    for refused in ("reserved-name-token", "path-default-token", "plain-text-token", "bad-name-token", "x"):
        assert cache.check(refused) is TokenCheck.INVALID
    reasons = {log["client"]: log["reason"] for log in logs if log["event"] == "client_refused"}
    assert reasons == {
        "empty": "empty_value",
        "broken": "malformed_value",
        "limitless": "malformed_value",
        "unauthenticated": "invalid_name",
        "with space": "invalid_name",
        "default": "duplicate_name",
        "mimic": "duplicate_token",
        "plain": "not_secure_string",
    }
    assert len([log for log in logs if log["event"] == "client_refused"]) == 8, "once each, not at every refresh"
    assert registry.get_sample_value("email_ingest_token_clients") == 2
    assert registry.get_sample_value("email_ingest_token_clients_refused") == 8
    assert not any("-token" in str(log) for log in logs), "values are never logged"


async def test_past_max_clients_every_pod_refuses_the_same_last_names() -> None:
    clock = FakeClock()
    source = clients_source(clock, **{f"client{index:02d}": f"token-{index}" for index in range(12)})
    pods = [make_cache(source, clock, max_clients=10) for _ in range(2)]
    for pod in pods:
        assert await pod.refresh(), "too many clients is no outage"
        # The single token's client counts too: 9 of the path's.
        assert pod.client_names == {"default", *(f"client{index:02d}" for index in range(9))}
        assert pod.check("token-8") == Client("client08")
        assert pod.check("token-9") is TokenCheck.INVALID
        assert pod.refused_count == 3


async def test_an_unusable_single_token_fails_the_load_and_keeps_the_last_good_one() -> None:
    clock = FakeClock()
    source = clients_source(clock, acme="acme-token")
    cache = make_cache(source, clock)
    assert await cache.refresh()
    source.write('{"token": 1}')
    assert not await cache.refresh()
    assert cache.check("secret") == DEFAULT
    assert cache.check("acme-token") == Client("acme")
