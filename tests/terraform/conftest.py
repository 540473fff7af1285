"""Once per session: the copy of terraform/ on the real AWS provider, initialised; the lifecycle of every applied
root. And the summary lines of the Terraform tests (which provider they used, how long each step took), printed
also without -s and when a test failed."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.terraform.applied import (
    APPLIED_ROOTS,
    EMAIL_INGEST_EXAMPLE,
    SECRET_EXAMPLE,
    Lifecycle,
    WhileApplied,
    plan_without_secrets_manager,
    root_variables,
    run_lifecycle,
)
from tests.terraform.pipeline_on_outputs import run_pipeline
from tests.terraform.real_provider import REPORT, Workspace, in_parallel, initialise, report


@pytest.fixture(scope="session")
def workspace() -> Iterator[Workspace]:
    # Not tmp_path_factory: pytest keeps its last three runs, and a run's roots hold states and .terraform dirs.
    directory = Path(tempfile.mkdtemp(prefix="email-ingest-tf-"))
    try:
        yield initialise(directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if REPORT:
        terminalreporter.section("Terraform on the real AWS provider (tests/terraform)")
        for line in REPORT:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def lifecycles(workspace: Workspace) -> dict[str, Lifecycle]:
    """Every root of applied.APPLIED_ROOTS applied, planned and destroyed, each on its own patched moto, three at
    a time. While applied, the email-ingest example runs the services on its outputs, and the secret example is
    planned with Secrets Manager out of reach."""
    logs = workspace.copy.parent / "logs"
    logs.mkdir(exist_ok=True)
    started = time.monotonic()

    while_applied: dict[str, WhileApplied] = {
        EMAIL_INGEST_EXAMPLE: run_pipeline,
        SECRET_EXAMPLE: plan_without_secrets_manager,
    }

    def lifecycle(root: str) -> Lifecycle:
        return run_lifecycle(
            workspace.root(root),
            root,
            workspace.provider,
            logs,
            root_variables(root),
            while_applied=while_applied.get(root),
        )

    # The slowest first, so that it is not the last one started.
    order = sorted(APPLIED_ROOTS, key=lambda root: root != EMAIL_INGEST_EXAMPLE)
    results = in_parallel(lifecycle, order, workers=3)
    for root in APPLIED_ROOTS:
        runs = [results[root].apply, results[root].plan, results[root].destroy]
        report(
            f"{root}: " + ", ".join(f"{run.args[0]} {run.seconds:.0f} s (exit {run.returncode})" for run in runs if run)
        )
    report(f"apply, plan and destroy of {len(results)} roots, 3 at a time: {time.monotonic() - started:.0f} s")
    return results
