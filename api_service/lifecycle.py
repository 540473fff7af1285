"""Where the API is in its life: serving, or draining after SIGTERM."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Lifecycle:
    """Set when SIGTERM arrives: readiness fails and new emails are refused while in-flight ones finish."""

    draining: bool = False
