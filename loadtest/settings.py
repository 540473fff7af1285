"""Load-test settings from ``LOADTEST_*`` environment variables (validated, with defaults)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass


class SettingsError(ValueError):
    """A ``LOADTEST_*`` variable is malformed or out of range."""


def env_float(
    name: str,
    default: float,
    *,
    minimum: float = 0.0,
    maximum: float = float("inf"),
    environ: Mapping[str, str] | None = None,
) -> float:
    raw = (os.environ if environ is None else environ).get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number") from None
    if not minimum <= value <= maximum:
        raise SettingsError(f"{name}={raw} is outside [{minimum}, {maximum}]")
    return value


def env_int(
    name: str,
    default: int,
    *,
    minimum: int = 0,
    maximum: int = 1_000_000_000,
    environ: Mapping[str, str] | None = None,
) -> int:
    raw = (os.environ if environ is None else environ).get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not an integer") from None
    if not minimum <= value <= maximum:
        raise SettingsError(f"{name}={raw} is outside [{minimum}, {maximum}]")
    return value


@dataclass(frozen=True)
class ScenarioMix:
    """Share of each request kind; the rest are valid emails (each request draws one kind)."""

    bad_token: float = 0.02
    missing_fields: float = 0.02
    malformed_json: float = 0.01
    idempotent_retry: float = 0.05

    @property
    def valid(self) -> float:
        return 1.0 - self.bad_token - self.missing_fields - self.malformed_json - self.idempotent_retry

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ScenarioMix:
        defaults = cls()
        mix = cls(
            bad_token=env_float("LOADTEST_BAD_TOKEN_SHARE", defaults.bad_token, maximum=1.0, environ=environ),
            missing_fields=env_float(
                "LOADTEST_MISSING_FIELDS_SHARE", defaults.missing_fields, maximum=1.0, environ=environ
            ),
            malformed_json=env_float(
                "LOADTEST_MALFORMED_JSON_SHARE", defaults.malformed_json, maximum=1.0, environ=environ
            ),
            idempotent_retry=env_float("LOADTEST_RETRY_SHARE", defaults.idempotent_retry, maximum=1.0, environ=environ),
        )
        if mix.valid < -1e-9:
            raise SettingsError(f"the LOADTEST_*_SHARE values add up to more than 1: {mix}")
        return mix


@dataclass(frozen=True)
class ContentSize:
    """Lognormal e-mail body sizes: ``median`` bytes, spread ``sigma``, clipped to [``minimum``, ``maximum``]."""

    median: int = 2048
    sigma: float = 1.0
    minimum: int = 16
    maximum: int = 200 * 1024

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ContentSize:
        defaults = cls()
        size = cls(
            median=env_int("LOADTEST_CONTENT_MEDIAN_BYTES", defaults.median, minimum=1, environ=environ),
            sigma=env_float("LOADTEST_CONTENT_SIGMA", defaults.sigma, maximum=5.0, environ=environ),
            minimum=defaults.minimum,
            maximum=env_int("LOADTEST_CONTENT_MAX_BYTES", defaults.maximum, minimum=16, environ=environ),
        )
        if size.median > size.maximum:
            raise SettingsError("LOADTEST_CONTENT_MEDIAN_BYTES is above LOADTEST_CONTENT_MAX_BYTES")
        return size
