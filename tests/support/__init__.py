"""Helpers shared by test modules (no test module imports another)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

Cleanups = list[Callable[[], Awaitable[object]]]  # the `cleanups` fixture (tests/conftest.py)
