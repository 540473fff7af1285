"""Load plans (pure functions of elapsed time) behind the shapes in loadtest/shapes.py.

``LOADTEST_SHAPE=step|spike|none`` picks one. A plan's last stage is ``None``: the run ends by itself.
This module must not import locust (its gevent monkey-patching would break asyncio tests in the same process).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from loadtest.settings import SettingsError, env_float, env_int

Stage = tuple[int, float]
"""(user count, spawn rate in users per second)."""

SHAPE_NAMES: Final = ("none", "step", "spike")


@dataclass(frozen=True)
class StepPlan:
    """``steps`` steps of ``step_users`` more users, each held ``step_seconds``; then the run ends."""

    step_users: int = 10
    step_seconds: float = 30.0
    steps: int = 5
    spawn_rate: float = 10.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> StepPlan:
        d = cls()
        return cls(
            step_users=env_int("LOADTEST_STEP_USERS", d.step_users, minimum=1, environ=environ),
            step_seconds=env_float("LOADTEST_STEP_SECONDS", d.step_seconds, minimum=1.0, environ=environ),
            steps=env_int("LOADTEST_STEPS", d.steps, minimum=1, environ=environ),
            spawn_rate=env_float("LOADTEST_SPAWN_RATE", d.spawn_rate, minimum=0.1, environ=environ),
        )

    @property
    def duration(self) -> float:
        return self.steps * self.step_seconds

    def stage_at(self, elapsed: float) -> Stage | None:
        if elapsed >= self.duration:
            return None
        step = int(elapsed // self.step_seconds) + 1
        return step * self.step_users, self.spawn_rate


@dataclass(frozen=True)
class SpikePlan:
    """``base_users`` for ``warmup_seconds``, a jump to ``spike_users`` for ``spike_seconds`` (started as fast as
    ``spike_spawn_rate`` allows), back to ``base_users`` for ``recovery_seconds``; then the run ends."""

    base_users: int = 10
    spike_users: int = 100
    warmup_seconds: float = 30.0
    spike_seconds: float = 30.0
    recovery_seconds: float = 60.0
    base_spawn_rate: float = 10.0
    spike_spawn_rate: float = 100.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SpikePlan:
        d = cls()
        plan = cls(
            base_users=env_int("LOADTEST_SPIKE_BASE_USERS", d.base_users, minimum=1, environ=environ),
            spike_users=env_int("LOADTEST_SPIKE_USERS", d.spike_users, minimum=1, environ=environ),
            warmup_seconds=env_float("LOADTEST_SPIKE_WARMUP_SECONDS", d.warmup_seconds, environ=environ),
            spike_seconds=env_float("LOADTEST_SPIKE_SECONDS", d.spike_seconds, minimum=1.0, environ=environ),
            recovery_seconds=env_float("LOADTEST_SPIKE_RECOVERY_SECONDS", d.recovery_seconds, environ=environ),
            base_spawn_rate=env_float("LOADTEST_SPAWN_RATE", d.base_spawn_rate, minimum=0.1, environ=environ),
            spike_spawn_rate=env_float("LOADTEST_SPIKE_SPAWN_RATE", d.spike_spawn_rate, minimum=0.1, environ=environ),
        )
        if plan.spike_users <= plan.base_users:
            raise SettingsError("LOADTEST_SPIKE_USERS must be above LOADTEST_SPIKE_BASE_USERS")
        return plan

    @property
    def duration(self) -> float:
        return self.warmup_seconds + self.spike_seconds + self.recovery_seconds

    def stage_at(self, elapsed: float) -> Stage | None:
        if elapsed < self.warmup_seconds:
            return self.base_users, self.base_spawn_rate
        if elapsed < self.warmup_seconds + self.spike_seconds:
            return self.spike_users, self.spike_spawn_rate
        if elapsed < self.duration:
            # Users are stopped at the spike rate too, so the drop is as sharp as the rise.
            return self.base_users, self.spike_spawn_rate
        return None


def shape_name_from_env(environ: Mapping[str, str] | None = None) -> str:
    """``LOADTEST_SHAPE`` (default ``none``: ``-u``/``-r``/``-t`` drive the run), validated."""
    name = (os.environ if environ is None else environ).get("LOADTEST_SHAPE", "none").strip().lower() or "none"
    if name not in SHAPE_NAMES:
        raise SettingsError(f"LOADTEST_SHAPE={name!r}: choose one of {', '.join(SHAPE_NAMES)}")
    return name
