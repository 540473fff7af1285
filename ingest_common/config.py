"""Reading settings from environment variables, with errors that name the variable."""

from __future__ import annotations

import math
from collections.abc import Mapping


class ConfigError(ValueError):
    """Raised at start-up with every invalid variable listed."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid configuration:\n  " + "\n  ".join(problems))
        self.problems = problems


class EnvReader:
    """Collects every problem before failing, so one start-up attempt shows them all."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ
        self.problems: list[str] = []

    def _raw(self, name: str) -> str | None:
        value = self._environ.get(name)
        return None if value is None or value.strip() == "" else value.strip()

    def required(self, name: str, meaning: str) -> str:
        value = self._raw(name)
        if value is None:
            self.problems.append(f"{name} is required ({meaning})")
            return ""
        return value

    def optional(self, name: str, default: str | None = None) -> str | None:
        value = self._raw(name)
        return default if value is None else value

    def first_of(self, names: tuple[str, ...], meaning: str) -> str:
        for name in names:
            value = self._raw(name)
            if value is not None:
                return value
        self.problems.append(f"{' or '.join(names)} is required ({meaning})")
        return ""

    def integer(self, name: str, default: int, *, minimum: int, maximum: int) -> int:
        raw = self._raw(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            self.problems.append(f"{name}={raw!r} is not an integer")
            return default
        if not minimum <= value <= maximum:
            self.problems.append(f"{name}={value} is outside {minimum}..{maximum}")
            return default
        return value

    def number(self, name: str, default: float, *, minimum: float, maximum: float) -> float:
        raw = self._raw(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            self.problems.append(f"{name}={raw!r} is not a number")
            return default
        if not math.isfinite(value) or not minimum <= value <= maximum:
            self.problems.append(f"{name}={raw} is outside {minimum}..{maximum}")
            return default
        return value

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        raw = self._raw(name)
        if raw is None:
            return default
        if raw.lower() not in choices:
            self.problems.append(f"{name}={raw!r} is not one of {', '.join(choices)}")
            return default
        return raw.lower()

    def url(self, name: str, meaning: str) -> str:
        value = self.required(name, meaning)
        if value and not value.startswith(("https://", "http://")):
            self.problems.append(f"{name}={value!r} is not an http(s) URL ({meaning})")
        return value

    def finish(self) -> None:
        if self.problems:
            raise ConfigError(self.problems)


LOG_LEVELS = ("debug", "info", "warning", "error")
