"""Load shapes for locust: a step ramp and a spike, chosen with ``LOADTEST_SHAPE=step|spike|none``.

A shape replaces ``-u``/``-r``/``-t``: it sets the user count over time and ends the run itself. The plans (and
their ``LOADTEST_STEP_*`` / ``LOADTEST_SPIKE_*`` settings) live in loadtest/plans.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from locust import LoadTestShape

from loadtest.plans import SpikePlan, Stage, StepPlan, shape_name_from_env


class StepShape(LoadTestShape):
    """Step ramp (``LOADTEST_STEP_*``)."""

    abstract: ClassVar[bool] = False

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # locust leaves it untyped
        self.plan = StepPlan.from_env()

    def tick(self) -> Stage | None:
        return self.plan.stage_at(self.get_run_time())  # type: ignore[no-untyped-call]


class SpikeShape(LoadTestShape):
    """Spike (``LOADTEST_SPIKE_*``)."""

    abstract: ClassVar[bool] = False

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # locust leaves it untyped
        self.plan = SpikePlan.from_env()

    def tick(self) -> Stage | None:
        return self.plan.stage_at(self.get_run_time())  # type: ignore[no-untyped-call]


SHAPES: dict[str, type[LoadTestShape] | None] = {"none": None, "step": StepShape, "spike": SpikeShape}


def shape_from_env(environ: Mapping[str, str] | None = None) -> type[LoadTestShape] | None:
    """The shape class named by ``LOADTEST_SHAPE`` (``None`` for ``none``)."""
    return SHAPES[shape_name_from_env(environ)]
