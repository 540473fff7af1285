"""scripts/soak.py end to end: a short soak in the default run, the full one (100,000 emails) marked slow."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.reliability.harness import REPO_ROOT, SOAK_PATH

_LINE = re.compile(r"^acknowledged (\d+), stored (\d+), missing (\d+), duplicates (\d+)$")


def _run_soak(tmp_path: Path, *args: str, timeout: float) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    completed = subprocess.run(
        [sys.executable, str(SOAK_PATH), "--log-dir", str(tmp_path / "logs"), *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    lines = completed.stdout.strip().splitlines()
    return completed, lines


def _injected(lines: list[str]) -> list[str]:
    return [line.split("fault: ", 1)[1].split(" for ")[0] for line in lines if "] fault: " in line]


@pytest.mark.integration
def test_short_soak_with_every_fault_accounts_for_every_email(tmp_path: Path) -> None:
    completed, lines = _run_soak(tmp_path, "--emails", "1000", "--fault-seconds", "2", timeout=240)
    output = f"{completed.stdout}\n{completed.stderr}"
    assert completed.returncode == 0, output
    assert lines[-1] == "acknowledged 1000, stored 1000, missing 0, duplicates 0", output
    # Every kind of fault was injected while the run went on, the consumer kill twice.
    injected = _injected(lines)
    assert sorted(set(injected)) == sorted(
        ["consumer-kill", "sqs-refuse", "s3-refuse", "ssm-refuse", "sqs-blackhole", "sqs-latency", "s3-blackhole"]
    ), output
    assert injected.count("consumer-kill") == 2, output


@pytest.mark.integration
def test_soak_arguments_are_checked(tmp_path: Path) -> None:
    completed, _ = _run_soak(tmp_path, "--emails", "0", timeout=60)
    assert completed.returncode == 2
    assert "--emails" in completed.stderr


@pytest.mark.slow
@pytest.mark.timeout(4 * 3600)
def test_full_soak(tmp_path: Path) -> None:
    completed, lines = _run_soak(tmp_path, timeout=4 * 3600)
    output = f"{completed.stdout[-5000:]}\n{completed.stderr[-5000:]}"
    assert completed.returncode == 0, output
    match = _LINE.match(lines[-1])
    assert match is not None, output
    assert match.groups() == ("100000", "100000", "0", "0"), output
