"""Unit tests of the token cache with an in-process fetch function and a fake clock."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry

from api_service.token_cache import TokenCache, TokenCheck, TokenMetrics


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeParameter:
    def __init__(self, value: str) -> None:
        self.value = value
        self.failing = False
        self.calls = 0

    async def fetch(self) -> str:
        self.calls += 1
        if self.failing:
            raise ConnectionError("ssm unreachable")
        return self.value


def make_cache(parameter: FakeParameter, clock: FakeClock, **overrides: float) -> TokenCache:
    settings = {"refresh_seconds": 300.0, "max_staleness_seconds": 3600.0, "rotation_grace_seconds": 60.0}
    settings.update(overrides)
    return TokenCache(parameter.fetch, clock=clock, **settings)


async def test_nothing_loaded_means_unavailable_not_invalid() -> None:
    cache = make_cache(FakeParameter("secret"), FakeClock())
    assert cache.check("secret") is TokenCheck.UNAVAILABLE
    assert cache.check(None) is TokenCheck.UNAVAILABLE


async def test_valid_and_invalid_tokens() -> None:
    cache = make_cache(FakeParameter("secret"), FakeClock())
    assert await cache.refresh()
    assert cache.check("secret") is TokenCheck.VALID
    assert cache.check("secret ") is TokenCheck.INVALID
    assert cache.check("") is TokenCheck.INVALID
    assert cache.check(None) is TokenCheck.INVALID
    assert cache.check("s" * 10_000) is TokenCheck.INVALID


async def test_failed_refresh_keeps_the_last_good_token_until_stale() -> None:
    parameter, clock = FakeParameter("secret"), FakeClock()
    cache = make_cache(parameter, clock, max_staleness_seconds=100.0)
    registry = CollectorRegistry()
    cache.metrics = TokenMetrics(registry, cache)
    assert await cache.refresh()
    parameter.failing = True
    clock.now += 99
    assert not await cache.refresh()
    assert cache.check("secret") is TokenCheck.VALID
    assert registry.get_sample_value("email_ingest_token_refreshes_total", {"outcome": "failure"}) == 1
    assert registry.get_sample_value("email_ingest_token_age_seconds") == pytest.approx(99)
    clock.now += 2
    assert cache.check("secret") is TokenCheck.UNAVAILABLE
    assert registry.get_sample_value("email_ingest_token_loaded") == 0
    parameter.failing = False
    assert await cache.refresh()
    assert cache.check("secret") is TokenCheck.VALID
    assert registry.get_sample_value("email_ingest_token_loaded") == 1


async def test_rotation_keeps_the_previous_token_for_the_grace_period() -> None:
    parameter, clock = FakeParameter("old"), FakeClock()
    cache = make_cache(parameter, clock, rotation_grace_seconds=60.0)
    await cache.refresh()
    parameter.value = "new"
    await cache.refresh()
    assert cache.check("new") is TokenCheck.VALID
    assert cache.check("old") is TokenCheck.VALID
    clock.now += 61
    assert cache.check("old") is TokenCheck.INVALID
    assert cache.check("new") is TokenCheck.VALID


async def test_an_empty_parameter_is_a_failed_refresh() -> None:
    parameter = FakeParameter("")
    cache = make_cache(parameter, FakeClock())
    assert not await cache.refresh()
    assert cache.check("") is TokenCheck.UNAVAILABLE


async def test_background_refresh_retries_quickly_until_the_first_load() -> None:
    parameter = FakeParameter("secret")
    parameter.failing = True
    cache = TokenCache(parameter.fetch, refresh_seconds=0.05, max_staleness_seconds=10, rotation_grace_seconds=0)
    await cache.start()
    assert cache.check("secret") is TokenCheck.UNAVAILABLE
    parameter.failing = False
    for _ in range(100):
        await asyncio.sleep(0.02)
        if cache.check("secret") is TokenCheck.VALID:
            break
    assert cache.check("secret") is TokenCheck.VALID
    calls = parameter.calls
    await asyncio.sleep(0.2)
    assert parameter.calls > calls, "the token is refreshed in the background"
    await cache.stop()
