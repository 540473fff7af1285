"""The figures tests/cluster measures (bring-up, rollout, the upgrade's counts), printed in pytest's summary."""

from __future__ import annotations

LINES: list[str] = []


def report(line: str) -> None:
    LINES.append(line)
