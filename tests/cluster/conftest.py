"""Prints tests/cluster's figures at the end of the run (also without -s, also when a test failed)."""

from __future__ import annotations

import pytest

from tests.cluster.report import LINES


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if LINES:
        terminalreporter.section("the single-node cluster (tests/cluster)")
        for line in LINES:
            terminalreporter.write_line(line)
