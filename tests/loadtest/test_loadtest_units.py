"""Unit tests of the load-test building blocks: settings, payloads, shapes and thresholds (no locust run)."""

from __future__ import annotations

import json
import random
import statistics
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any

import pytest

from loadtest import payloads
from loadtest.plans import SpikePlan, StepPlan, shape_name_from_env
from loadtest.settings import ContentSize, ScenarioMix, SettingsError
from loadtest.thresholds import (
    ACCEPT,
    BAD_TOKEN,
    MALFORMED_JSON,
    RATE_LIMITED,
    SHED,
    Limits,
    Summary,
    percentile,
    summarize,
    violations,
)

# -- settings -----------------------------------------------------------------------------------------------------


def test_unit_scenario_mix_defaults_and_env() -> None:
    assert ScenarioMix.from_env({}) == ScenarioMix()
    mix = ScenarioMix.from_env({"LOADTEST_BAD_TOKEN_SHARE": "0.25", "LOADTEST_RETRY_SHARE": "0.5"})
    assert mix.bad_token == 0.25
    assert mix.idempotent_retry == 0.5
    assert mix.valid == pytest.approx(1 - 0.25 - 0.02 - 0.01 - 0.5)


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"LOADTEST_BAD_TOKEN_SHARE": "lots"}, "not a number"),
        ({"LOADTEST_BAD_TOKEN_SHARE": "-0.1"}, "outside"),
        ({"LOADTEST_MISSING_FIELDS_SHARE": "1.5"}, "outside"),
        ({"LOADTEST_BAD_TOKEN_SHARE": "0.6", "LOADTEST_RETRY_SHARE": "0.6"}, "more than 1"),
    ],
    ids=["not-a-number", "negative", "above-one", "sum-above-one"],
)
def test_unit_scenario_mix_rejects_bad_values(environ: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        ScenarioMix.from_env(environ)


def test_unit_content_size_rejects_median_above_cap() -> None:
    with pytest.raises(SettingsError, match="MEDIAN"):
        ContentSize.from_env({"LOADTEST_CONTENT_MEDIAN_BYTES": "5000", "LOADTEST_CONTENT_MAX_BYTES": "4000"})


# -- payloads -----------------------------------------------------------------------------------------------------


def test_unit_content_sizes_are_lognormal_around_2kib_and_capped() -> None:
    rng = random.Random(1)
    size = ContentSize()
    lengths = [payloads.content_length(rng, size) for _ in range(20_000)]
    assert 1800 <= statistics.median(lengths) <= 2300
    assert min(lengths) >= size.minimum
    assert max(lengths) <= 200 * 1024
    assert statistics.mean(lengths) > statistics.median(lengths)  # right-skewed, as mail sizes are
    wide = ContentSize(sigma=4.0)
    assert max(payloads.content_length(rng, wide) for _ in range(2000)) == wide.maximum


def test_unit_valid_email_matches_the_contract() -> None:
    rng = random.Random(2)
    for _ in range(200):
        email = payloads.valid_email(rng, ContentSize(), now=1_700_000_000)
        assert set(email) == set(payloads.REQUIRED_FIELDS)
        assert isinstance(email["email_subject"], str)
        assert email["email_subject"]
        assert "@" in email["email_sender"]
        assert 1_700_000_000 - 7 * 24 * 3600 <= email["email_timestream"] <= 1_700_000_000
        assert isinstance(email["email_content"], str)
        body = json.loads(payloads.request_body(email, "tok"))
        assert body == {"data": email, "token": "tok"}


def test_unit_bad_payloads_are_bad() -> None:
    rng = random.Random(3)
    size = ContentSize(median=200)
    for _ in range(300):
        with pytest.raises((json.JSONDecodeError, UnicodeDecodeError)):
            json.loads(payloads.malformed_json_body(rng, size, "tok"))
        document: Any = json.loads(payloads.missing_fields_body(rng, size, "tok"))
        assert document["token"] == "tok"
        assert "data" not in document or set(payloads.REQUIRED_FIELDS) - set(document["data"])
        assert payloads.wrong_token(rng, "tok") != "tok"


# -- shapes -------------------------------------------------------------------------------------------------------


def test_unit_step_plan() -> None:
    plan = StepPlan(step_users=10, step_seconds=30, steps=3, spawn_rate=5)
    assert plan.stage_at(0) == (10, 5)
    assert plan.stage_at(29.9) == (10, 5)
    assert plan.stage_at(30) == (20, 5)
    assert plan.stage_at(89.9) == (30, 5)
    assert plan.stage_at(90) is None
    assert plan.duration == 90


def test_unit_spike_plan() -> None:
    plan = SpikePlan(base_users=5, spike_users=50, warmup_seconds=10, spike_seconds=5, recovery_seconds=20)
    assert plan.stage_at(0) == (5, plan.base_spawn_rate)
    assert plan.stage_at(10) == (50, plan.spike_spawn_rate)
    assert plan.stage_at(14.9) == (50, plan.spike_spawn_rate)
    assert plan.stage_at(15) == (5, plan.spike_spawn_rate)
    assert plan.stage_at(34.9) == (5, plan.spike_spawn_rate)
    assert plan.stage_at(35) is None


def test_unit_shape_selection() -> None:
    assert shape_name_from_env({}) == "none"
    assert shape_name_from_env({"LOADTEST_SHAPE": "step"}) == "step"
    assert shape_name_from_env({"LOADTEST_SHAPE": " Spike "}) == "spike"
    with pytest.raises(SettingsError, match="LOADTEST_SHAPE"):
        shape_name_from_env({"LOADTEST_SHAPE": "ramp"})


@pytest.mark.parametrize(
    "environ",
    [
        {"LOADTEST_STEPS": "0"},
        {"LOADTEST_STEP_SECONDS": "soon"},
        {"LOADTEST_SPAWN_RATE": "0"},
    ],
    ids=["zero-steps", "not-a-number", "zero-rate"],
)
def test_unit_step_plan_rejects_bad_values(environ: dict[str, str]) -> None:
    with pytest.raises(SettingsError):
        StepPlan.from_env(environ)


def test_unit_spike_must_exceed_base() -> None:
    with pytest.raises(SettingsError, match="above"):
        SpikePlan.from_env({"LOADTEST_SPIKE_BASE_USERS": "50", "LOADTEST_SPIKE_USERS": "50"})


# -- thresholds ---------------------------------------------------------------------------------------------------


@dataclass
class FakeEntry:
    """What locust.stats.StatsEntry exposes (locust itself must not be imported here: it monkey-patches gevent)."""

    name: str
    num_requests: int = 0
    num_none_requests: int = 0
    num_failures: int = 0
    response_times: dict[int, int] = field(default_factory=dict)

    def log(self, response_time: int, *, failed: bool = False) -> FakeEntry:
        self.num_requests += 1
        self.num_failures += int(failed)
        self.response_times[response_time] = self.response_times.get(response_time, 0) + 1
        return self


def _entries(
    accepted_ms: list[int], *, failures: int = 0, rejections_ms: list[int] | None = None, shed: int = 0
) -> list[FakeEntry]:
    accepted, bad_token, malformed, shed_entry = (FakeEntry(n) for n in (ACCEPT, BAD_TOKEN, MALFORMED_JSON, SHED))
    for response_time in accepted_ms:
        accepted.log(response_time)
    for _ in range(failures):
        accepted.log(5, failed=True)
    for index, response_time in enumerate(rejections_ms or []):
        (bad_token if index % 2 else malformed).log(response_time)
    for _ in range(shed):
        shed_entry.log(1)
    return [accepted, bad_token, malformed, shed_entry]


def test_unit_percentile_matches_locust() -> None:
    times = {10: 90, 200: 9, 900: 1}
    # locust rounds up: the answer is the slowest time still needed to cover the fraction.
    assert percentile(times, 100, 0.5) == 10
    assert percentile(times, 100, 0.9) == 200
    assert percentile(times, 100, 0.95) == 200
    assert percentile(times, 100, 0.99) == 900
    assert percentile({}, 0, 0.95) == 0


def test_unit_summary_keeps_shed_and_rejections_out_of_latency() -> None:
    summary = summarize(_entries([100] * 100, rejections_ms=[5000] * 50, shed=30))
    assert summary.requests == 150  # rejections count for the error rate ...
    assert summary.latency_samples == 100  # ... but not for the latency of the accepted path
    assert summary.p95_ms == 100
    assert summary.p99_ms == 100
    assert summary.shed == 30
    assert summary.shed_rate == pytest.approx(30 / 180)
    assert violations(summary, Limits(max_shed_rate=0.5)) == []


def test_unit_rate_limited_requests_are_counted_apart() -> None:
    entries = _entries([100] * 100)
    limited = FakeEntry(RATE_LIMITED)
    for _ in range(40):
        limited.log(5000)
    summary = summarize([*entries, limited])
    assert summary.rate_limited == 40
    assert summary.requests == 100 and summary.failures == 0
    assert summary.p99_ms == 100, "a 429's time is not the service's latency"
    assert summary.shed_rate == 0
    assert violations(summary, Limits()) == []


def test_unit_violations_name_each_broken_limit() -> None:
    summary = Summary(requests=100, failures=5, shed=50, latency_samples=95, p95_ms=700, p99_ms=2000)
    problems = violations(summary, Limits(), unhandled_exceptions=2)
    assert len(problems) == 5
    joined = "\n".join(problems)
    for name in ("ERROR_RATE", "P95_MS", "P99_MS", "SHED_RATE", "unhandled exception"):
        assert name in joined
    assert violations(summary, Limits(max_error_rate=0.05, max_p95_ms=700, max_p99_ms=2000, max_shed_rate=1)) == []


def test_unit_error_rate_boundary() -> None:
    summary = summarize(_entries([10] * 99, failures=1))
    assert summary.error_rate == pytest.approx(0.01)
    assert violations(summary, Limits(max_error_rate=0.01)) == []
    assert violations(summary, Limits(max_error_rate=0.009))


def test_unit_empty_run_fails() -> None:
    assert violations(summarize([]), Limits()) == ["only 0 request(s) counted (LOADTEST_MIN_REQUESTS=1)"]


def test_unit_limits_from_env() -> None:
    assert Limits.from_env({}) == Limits()
    limits = Limits.from_env(
        {
            "LOADTEST_MAX_ERROR_RATE": "0.1",
            "LOADTEST_MAX_P95_MS": "250",
            "LOADTEST_MAX_P99_MS": "900",
            "LOADTEST_MAX_SHED_RATE": "0.5",
        }
    )
    assert limits == Limits(max_error_rate=0.1, max_p95_ms=250, max_p99_ms=900, max_shed_rate=0.5)
    with pytest.raises(SettingsError):
        Limits.from_env({"LOADTEST_MAX_P95_MS": "fast"})


@pytest.mark.integration
def test_unit_pure_modules_do_not_import_locust() -> None:
    """Importing locust monkey-patches the standard library (gevent): the modules tests import must not."""
    code = (
        "import sys, loadtest.settings, loadtest.payloads, loadtest.plans, loadtest.thresholds; "
        "sys.exit('locust' in sys.modules)"
    )
    completed = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True)
    assert completed.returncode == 0, completed.stderr or "a pure module imported locust"
