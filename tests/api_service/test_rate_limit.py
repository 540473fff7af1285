"""The per-client token buckets, on a fake clock, and what a client's parameter value may hold."""

from __future__ import annotations

import pytest

from api_service.clients import NO_RATE_LIMIT, Client, ParameterValue, RateLimit, UnusableValue, parse_value
from api_service.rate_limit import RateLimiter, TokenBucket, retry_after_header


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_admits_its_burst_then_its_rate() -> None:
    bucket = TokenBucket(RateLimit(2.0, 3), now=0.0)
    assert [bucket.take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(0.0) == pytest.approx(0.5), "one token every half second"
    assert bucket.take(0.25) == pytest.approx(0.25), "a refused request takes nothing"
    assert bucket.take(0.5) == 0.0
    assert bucket.take(10.0) == 0.0
    assert bucket.tokens(10.0) == pytest.approx(2.0), "refilled up to the burst, never past it"


def test_a_clock_that_goes_back_refills_nothing() -> None:
    bucket = TokenBucket(RateLimit(1.0, 1), now=10.0)
    assert bucket.take(10.0) == 0.0
    assert bucket.take(5.0) > 0


def test_each_client_has_its_own_bucket() -> None:
    clock = Clock()
    limiter = RateLimiter(RateLimit.of(1.0), clock)
    flooding, quiet = Client("flooding"), Client("quiet")
    assert limiter.retry_after(flooding) == 0.0
    assert limiter.retry_after(flooding) == pytest.approx(1.0)
    assert limiter.retry_after(quiet) == 0.0, "one client's flood leaves the others alone"
    clock.now += 1.0
    assert limiter.retry_after(flooding) == 0.0


def test_no_limit_by_default_and_a_clients_own_limit_wins() -> None:
    clock = Clock()
    limiter = RateLimiter(RateLimit.of(0.0), clock)
    assert all(limiter.retry_after(Client("free")) == 0.0 for _ in range(1000))
    limited = Client("limited", RateLimit(1.0, 2))
    assert [limiter.retry_after(limited) > 0 for _ in range(3)] == [False, False, True]
    assert limiter.buckets == 1, "no bucket for a client without a limit"
    unlimited = RateLimiter(RateLimit.of(1.0), clock)
    assert all(unlimited.retry_after(Client("vip", RateLimit.of(0.0))) == 0.0 for _ in range(100))


def test_a_changed_limit_keeps_what_the_bucket_held() -> None:
    clock = Clock()
    limiter = RateLimiter(RateLimit.of(0.0), clock)
    for _ in range(10):
        limiter.retry_after(Client("acme", RateLimit(1.0, 10)))
    # Rotating the parameter to a higher burst does not hand the client a fresh burst.
    assert limiter.retry_after(Client("acme", RateLimit(1.0, 100))) > 0
    clock.now += 1.0
    assert limiter.retry_after(Client("acme", RateLimit(1.0, 100))) == 0.0


def test_removed_clients_lose_their_buckets() -> None:
    limiter = RateLimiter(RateLimit.of(1.0), Clock())
    for name in ("a", "b", "c"):
        limiter.retry_after(Client(name))
    limiter.retain({"b"})
    assert limiter.buckets == 1


@pytest.mark.parametrize(("seconds", "header"), [(0.001, "1"), (1.0, "1"), (1.2, "2"), (59.5, "60")])
def test_retry_after_is_whole_seconds_rounded_up(seconds: float, header: str) -> None:
    assert retry_after_header(seconds) == header


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ("plain-token", ParameterValue("plain-token")),
        ('["not an object"]', ParameterValue('["not an object"]')),  # only a value starting with "{" is JSON
        ('{"token": "t"}', ParameterValue("t")),
        ('{"token": "t", "rate_limit_rps": 5}', ParameterValue("t", RateLimit(5.0, 5))),
        ('{"token": "t", "rate_limit_rps": 0.5}', ParameterValue("t", RateLimit(0.5, 1))),
        ('{"token": "t", "rate_limit_rps": 5, "rate_limit_burst": 50}', ParameterValue("t", RateLimit(5.0, 50))),
        ('{"token": "t", "rate_limit_rps": 0}', ParameterValue("t", RateLimit(0.0, 1))),
        ('{"token": "t", "rate_limit_rps": 0.001}', ParameterValue("t", RateLimit(0.001, 1))),  # the slowest
    ],
)
def test_a_value_is_a_token_or_json_with_a_limit(value: str, parsed: ParameterValue) -> None:
    assert parse_value(value) == parsed


@pytest.mark.parametrize(
    "value",
    [
        "{not json",
        "{}",
        '{"token": ""}',
        '{"token": 7}',
        '{"token": "t", "rate": 1}',
        '{"token": "t", "rate_limit_rps": -1}',
        '{"token": "t", "rate_limit_rps": 1e-320}',  # once accepted: its wait overflowed Retry-After into a 500
        '{"token": "t", "rate_limit_rps": 0.0009}',
        '{"token": "t", "rate_limit_rps": true}',
        '{"token": "t", "rate_limit_rps": "5"}',
        '{"token": "t", "rate_limit_rps": 5, "rate_limit_burst": 0}',
        '{"token": "t", "rate_limit_rps": 5, "rate_limit_burst": 1.5}',
        '{"token": "t", "rate_limit_burst": 5}',
    ],
)
def test_an_unusable_value_is_refused_without_quoting_it(value: str) -> None:
    with pytest.raises(UnusableValue) as refused:
        parse_value(value)
    assert value not in str(refused.value)


def test_a_values_repr_hides_the_token() -> None:
    assert "s3cret" not in repr(parse_value('{"token": "s3cret", "rate_limit_rps": 1}'))


def test_the_slowest_limit_answers_a_finite_retry_after() -> None:
    """At the smallest accepted rate an empty bucket asks for 1,000 s, never an overflow."""
    limiter = RateLimiter(NO_RATE_LIMIT, clock=Clock())
    client = Client("slow", parse_value('{"token": "t", "rate_limit_rps": 0.001}').rate_limit)
    assert limiter.retry_after(client) == 0
    assert retry_after_header(limiter.retry_after(client)) == "1000"
