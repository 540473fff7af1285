"""Unit tests of the token cache with a fake token source (SSM's version history) and fake clocks."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from prometheus_client import CollectorRegistry

from api_service.metrics import TokenMetrics
from api_service.token_cache import TokenCache, TokenCheck
from api_service.token_source import TokenVersion

T0 = 1_800_000_000.0  # wall clock (Unix time) at the start of each test


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
    """SSM's history of one parameter: `write` adds a version stamped with the wall clock, like put_parameter."""

    def __init__(self, clock: FakeClock, value: str | None = None) -> None:
        self.clock = clock
        self.history: list[TokenVersion] = []
        self.failing = False
        self.calls = 0
        self.gate: asyncio.Event | None = None  # when set, each call waits for it
        if value is not None:
            self.write(value)

    def write(self, value: str, *, at: float | None = None) -> None:
        written = datetime.fromtimestamp(self.clock.wall if at is None else at, UTC)
        self.history.append(TokenVersion(len(self.history) + 1, value, written))

    async def versions(self) -> list[TokenVersion]:
        self.calls += 1
        snapshot = list(self.history)  # what SSM held when the call arrived
        if self.gate is not None:
            await self.gate.wait()
        if self.failing:
            raise ConnectionError("ssm unreachable")
        return snapshot


def make_cache(
    source: FakeSource, clock: FakeClock, *, metrics: TokenMetrics | None = None, **overrides: float
) -> TokenCache:
    settings = {
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
    assert cache.check("secret") is TokenCheck.VALID
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
    assert cache.check("secret") is TokenCheck.VALID
    assert registry.get_sample_value("email_ingest_token_refreshes_total", {"outcome": "failure"}) == 1
    assert registry.get_sample_value("email_ingest_token_age_seconds") == pytest.approx(99)
    clock.advance(2)
    assert cache.check("secret") is TokenCheck.UNAVAILABLE
    assert registry.get_sample_value("email_ingest_token_loaded") == 0
    source.failing = False
    assert await cache.refresh()
    assert cache.check("secret") is TokenCheck.VALID
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
    assert cache.check("new") is TokenCheck.VALID
    assert cache.check("old") is TokenCheck.VALID
    clock.advance(9.9)
    assert cache.check("old") is TokenCheck.VALID
    clock.advance(0.2)  # T0 + 60.1
    assert cache.check("old") is TokenCheck.INVALID
    assert cache.check("new") is TokenCheck.VALID


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
            accepted = {token for token in ("v1", "v2", "v3", "v0") if pod.check(token) is TokenCheck.VALID}
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
    assert cache.check("v99") is TokenCheck.VALID
    assert cache.check("v90") is TokenCheck.VALID
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
    assert cache.check("a") is TokenCheck.VALID
    assert cache.check("b") is TokenCheck.INVALID


async def test_an_unknown_token_triggers_one_early_refresh_per_interval() -> None:
    clock = FakeClock()
    source = FakeSource(clock, "old")
    registry = CollectorRegistry()
    cache = make_cache(source, clock, metrics=TokenMetrics(registry), early_refresh_seconds=5.0)
    assert await cache.refresh()
    source.write("new")
    assert cache.check("new") is TokenCheck.INVALID
    assert await cache.recheck("new") is TokenCheck.VALID
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
    assert verdicts == [TokenCheck.VALID if i % 2 else TokenCheck.INVALID for i in range(20)]
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
        if cache.check("new") is TokenCheck.VALID:
            break
    assert cache.check("new") is TokenCheck.VALID
    await cache.stop()


async def test_a_failed_early_refresh_keeps_the_tokens_and_is_counted() -> None:
    clock = FakeClock()
    source = FakeSource(clock, "secret")
    registry = CollectorRegistry()
    cache = make_cache(source, clock, metrics=TokenMetrics(registry))
    assert await cache.refresh()
    source.failing = True
    assert await cache.recheck("wrong") is TokenCheck.INVALID
    assert cache.check("secret") is TokenCheck.VALID
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
    assert await cache.recheck("new") is TokenCheck.VALID  # ...an early one after it, and answers first
    slow_ssm.set()
    assert await background
    assert cache.check("new") is TokenCheck.VALID, "the older view of SSM was not applied"
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
        if cache.check("secret") is TokenCheck.VALID:
            break
    assert cache.check("secret") is TokenCheck.VALID
    calls = source.calls
    await asyncio.sleep(0.2)
    assert source.calls > calls, "the token is refreshed in the background"
    await cache.stop()
