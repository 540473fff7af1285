"""The copy of terraform/ on the real AWS provider, initialised once per session, and the summary lines of the
Terraform tests (which provider they used, how long they took), printed also without -s and when a test failed."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.terraform.real_provider import REPORT, Workspace, initialise


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
