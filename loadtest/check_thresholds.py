"""Makes headless locust runs exit 1 when a threshold (loadtest/thresholds.py) is broken, 0 otherwise.

A ``quitting`` listener sets ``environment.process_exit_code``. That overrides locust's default of exiting 1 on any
failure, so a run with a tolerated trickle of errors passes and a slow run without errors fails.

With ``--csv PREFIX`` it also writes ``PREFIX_thresholds.json``: the verdict, the limits, the summary, and the final
per-name counts and failure messages. Unlike locust's CSV files, which are rewritten once a second and so can miss
the last second of a run (locust issue #1806), it is written from the final stats.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

from locust import events
from locust.env import Environment
from locust.runners import WorkerRunner

from loadtest.thresholds import Limits, Summary, summarize, violations

logger = logging.getLogger("loadtest.thresholds")


def on_quitting(environment: Environment, **_kwargs: Any) -> None:
    """Sets the exit code of the master/standalone process from the thresholds."""
    runner = environment.runner
    if runner is None or isinstance(runner, WorkerRunner):
        return
    limits = Limits.from_env()
    summary = summarize(environment.stats.entries.values())
    problems = violations(summary, limits, unhandled_exceptions=len(runner.exceptions))
    logger.info(
        "thresholds: requests=%d failures=%d error_rate=%.4f p95=%.0fms p99=%.0fms shed=%d shed_rate=%.4f "
        "rate_limited=%d",
        summary.requests,
        summary.failures,
        summary.error_rate,
        summary.p95_ms,
        summary.p99_ms,
        summary.shed,
        summary.shed_rate,
        summary.rate_limited,
    )
    if problems:
        for problem in problems:
            logger.error("threshold broken: %s", problem)
        environment.process_exit_code = 1
    else:
        logger.info("all thresholds met")
        environment.process_exit_code = 0
    csv_prefix = getattr(environment.parsed_options, "csv_prefix", None)
    if csv_prefix:
        path = Path(f"{csv_prefix}_thresholds.json")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(_report(environment, limits, summary, problems), indent=2), encoding="utf-8")


def _report(environment: Environment, limits: Limits, summary: Summary, problems: list[str]) -> dict[str, Any]:
    stats = environment.stats
    return {
        "passed": not problems,
        "problems": problems,
        "limits": asdict(limits),
        "summary": {**asdict(summary), "error_rate": summary.error_rate, "shed_rate": summary.shed_rate},
        "requests": {
            entry.name: {"method": entry.method, "requests": entry.num_requests, "failures": entry.num_failures}
            for entry in stats.entries.values()
        },
        "failures": [
            {"method": error.method, "name": error.name, "error": str(error.error), "occurrences": error.occurrences}
            for error in stats.errors.values()
        ],
    }


_registered: list[bool] = []


def register() -> None:
    """Adds the listener once (the locustfile calls this at import)."""
    if not _registered:
        events.quitting.add_listener(on_quitting)  # type: ignore[no-untyped-call]  # locust leaves it untyped
        _registered.append(True)
