"""Real headless locust runs (subprocesses) of loadtest/locustfile.py against a stub of the API contract.

Each scenario starts its own stub on a free 127.0.0.1 port; every run stops by itself (``-t`` or the shape's end).
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.loadtest.stub_api import Mode, StubApi
from tests.support.loadtest import ALL_NAMES, BASE_ENV, TOKEN
from tests.tooling import REPO_ROOT

RUN_SECONDS = 4


@dataclass(frozen=True)
class LocustRun:
    completed: subprocess.CompletedProcess[str]
    reports: Path
    stub: StubApi

    @property
    def output(self) -> str:
        return f"--- stdout\n{self.completed.stdout[-6000:]}\n--- stderr\n{self.completed.stderr[-6000:]}"

    def report(self) -> dict[str, Any]:
        """``run_thresholds.json``: written from the final stats (locust's CSVs can lag up to a second)."""
        path = self.reports / "run_thresholds.json"
        assert path.is_file(), f"no thresholds report\n{self.output}"
        document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return document

    def stats(self) -> dict[str, dict[str, int]]:
        requests: dict[str, dict[str, int]] = self.report()["requests"]
        return requests

    def failures(self) -> str:
        return "\n".join(f"{item['name']}: {item['error']}" for item in self.report()["failures"])

    def csv_header(self, suffix: str) -> list[str]:
        with (self.reports / f"run_{suffix}.csv").open(newline="", encoding="utf-8") as handle:
            return next(csv.reader(handle))


@dataclass(frozen=True)
class Scenario:
    mode: Mode
    env: dict[str, str] = field(default_factory=dict)
    delay_seconds: float = 0.0
    args: tuple[str, ...] = ("-u", "5", "-r", "5", "-t", f"{RUN_SECONDS}s")


def run_locust(scenario: Scenario, tmp_path: Path) -> Iterator[LocustRun]:
    stub = StubApi(TOKEN, scenario.mode, scenario.delay_seconds)
    stub.start()
    reports = tmp_path / "reports"
    reports.mkdir()
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(REPO_ROOT / "loadtest" / "locustfile.py"),
        "--headless",
        *scenario.args,
        "--host",
        stub.url,
        "--csv",
        str(reports / "run"),
        "--html",
        str(reports / "run.html"),
        "--only-summary",
        "--stop-timeout",
        "2",
    ]
    env = {key: value for key, value in os.environ.items() if not key.startswith("LOADTEST_")}
    env.update(BASE_ENV)
    env.update(scenario.env)
    try:
        completed = subprocess.run(
            command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=90, check=False
        )
        yield LocustRun(completed, reports, stub)
    finally:
        stub.stop()


@pytest.fixture
def locust_run(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LocustRun]:
    yield from run_locust(request.param, tmp_path)


@pytest.mark.integration
@pytest.mark.parametrize("locust_run", [Scenario("ok")], indirect=True, ids=["ok"])
def test_good_api_passes_with_reports(locust_run: LocustRun) -> None:
    assert locust_run.completed.returncode == 0, locust_run.output
    assert "all thresholds met" in locust_run.completed.stderr, locust_run.output
    assert locust_run.report()["passed"] is True
    assert locust_run.csv_header("stats")[:4] == ["Type", "Name", "Request Count", "Failure Count"]
    for suffix in ("failures", "stats_history", "exceptions"):
        assert locust_run.csv_header(suffix), f"run_{suffix}.csv is empty"
    html = (locust_run.reports / "run.html").read_text(encoding="utf-8")
    assert "POST /api/email [idempotent retry]" in html
    stats = locust_run.stats()
    assert set(stats) >= ALL_NAMES, f"missing request kinds: {ALL_NAMES - set(stats)}"
    for name in ALL_NAMES:
        assert stats[name]["failures"] == 0, (name, locust_run.failures())
    # The bad requests really got their 401/400 and were counted as successes.
    seen = locust_run.stub.seen
    assert seen["unauthorized"] > 0
    assert seen["invalid_payload"] > 0
    assert seen["malformed_json"] > 0
    assert seen["idempotent"] > 0
    assert seen["accepted"] == 0, "every valid email carries an Idempotency-Key, as a client that retries should"
    assert "shed" not in stats


@pytest.mark.integration
@pytest.mark.parametrize(
    ("locust_run", "expected_in_log", "expected_in_failures"),
    [
        (Scenario("errors"), "threshold broken: error rate", "expected 200, got 500 (internal-error)"),
        (Scenario("slow", {"LOADTEST_MAX_P95_MS": "100"}, 0.25), "threshold broken: p95", ""),
        (Scenario("lenient"), "threshold broken: error rate", "expected 401, got 200"),
        (Scenario("forgetful"), "threshold broken: error rate", "email_id mismatch on an idempotent retry"),
        (Scenario("shed"), "threshold broken: shed rate", ""),
    ],
    indirect=["locust_run"],
    ids=["server-errors", "slow", "bad-requests-accepted", "idempotency-broken", "shedding"],
)
def test_broken_thresholds_fail_the_run(locust_run: LocustRun, expected_in_log: str, expected_in_failures: str) -> None:
    assert locust_run.completed.returncode != 0, locust_run.output
    assert expected_in_log in locust_run.completed.stderr, locust_run.output
    assert expected_in_failures in locust_run.failures(), locust_run.failures()
    report = locust_run.report()
    assert report["passed"] is False
    assert report["problems"]
    assert (locust_run.reports / "run.html").is_file()
    assert (locust_run.reports / "run_stats.csv").is_file()


@pytest.mark.integration
@pytest.mark.parametrize("locust_run", [Scenario("rate_limited")], indirect=True, ids=["rate-limited"])
def test_429_is_its_own_outcome_not_a_failure(locust_run: LocustRun) -> None:
    assert locust_run.completed.returncode == 0, locust_run.output
    stats = locust_run.stats()
    assert stats["rate_limited"]["requests"] == locust_run.stub.seen["rate_limited"] > 0
    assert stats["rate_limited"]["failures"] == 0
    summary = locust_run.report()["summary"]
    assert summary["rate_limited"] == stats["rate_limited"]["requests"]
    assert summary["failures"] == 0 and summary["shed"] == 0


@pytest.mark.integration
@pytest.mark.parametrize(
    "locust_run",
    [
        Scenario("slow", {"LOADTEST_MAX_P95_MS": "3000", "LOADTEST_MAX_P99_MS": "3000"}, 0.25),
        Scenario("shed", {"LOADTEST_MAX_SHED_RATE": "1"}),
    ],
    indirect=True,
    ids=["slow-within-raised-limits", "shedding-allowed"],
)
def test_limits_are_configurable(locust_run: LocustRun) -> None:
    assert locust_run.completed.returncode == 0, locust_run.output
    stats = locust_run.stats()
    if locust_run.stub.mode == "shed":
        # 503 + Retry-After lands under its own name and is not a failure.
        assert stats["shed"]["requests"] > 0
        assert stats["shed"]["failures"] == 0
        assert "POST /api/email" not in stats or stats["POST /api/email"]["requests"] == 0


# The shape tests are about the run ending by itself: a stall of the shared machine (seen: one request of 80 at
# 1.1 s against the stub) must not fail them on the latency thresholds, which the "slow" scenarios test.
SHAPE_LIMITS = {"LOADTEST_MAX_P95_MS": "10000", "LOADTEST_MAX_P99_MS": "10000"}


@pytest.mark.integration
@pytest.mark.parametrize(
    "locust_run",
    [
        Scenario(
            "ok",
            {
                "LOADTEST_SHAPE": "step",
                "LOADTEST_STEP_USERS": "2",
                "LOADTEST_STEP_SECONDS": "1",
                "LOADTEST_STEPS": "3",
                **SHAPE_LIMITS,
            },
            args=(),
        ),
        Scenario(
            "ok",
            {
                "LOADTEST_SHAPE": "spike",
                "LOADTEST_SPIKE_BASE_USERS": "1",
                "LOADTEST_SPIKE_USERS": "6",
                "LOADTEST_SPIKE_WARMUP_SECONDS": "1",
                "LOADTEST_SPIKE_SECONDS": "1",
                "LOADTEST_SPIKE_RECOVERY_SECONDS": "1",
                **SHAPE_LIMITS,
            },
            args=(),
        ),
    ],
    indirect=True,
    ids=["step", "spike"],
)
def test_shapes_end_the_run_by_themselves(locust_run: LocustRun) -> None:
    # No -u/-r/-t: only the shape can stop the run before the subprocess timeout.
    assert locust_run.completed.returncode == 0, locust_run.output
    assert locust_run.report()["summary"]["requests"] > 0


@pytest.mark.integration
def test_missing_token_is_refused(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("LOADTEST_")}
    completed = subprocess.run(
        [sys.executable, "-m", "locust", "-f", str(REPO_ROOT / "loadtest" / "locustfile.py"), "--headless", "-t", "1s"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode != 0
    assert "LOADTEST_TOKEN is not set" in completed.stderr


@pytest.mark.integration
def test_bad_shape_is_refused(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("LOADTEST_")}
    env.update({"LOADTEST_TOKEN": TOKEN, "LOADTEST_SHAPE": "ramp"})
    completed = subprocess.run(
        [sys.executable, "-m", "locust", "-f", str(REPO_ROOT / "loadtest" / "locustfile.py"), "--headless", "-t", "1s"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode != 0
    assert "LOADTEST_SHAPE='ramp'" in completed.stderr
