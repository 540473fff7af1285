"""Who the API's clients are: their names, and what a client's SSM parameter value holds (its token, and
optionally its own rate limit)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Final

import orjson

DEFAULT_CLIENT: Final = "default"  # the client of the single token (TOKEN_PARAMETER_NAME)
# The `client` of requests no client was recognised for (no token, a wrong one, or refused before the token was
# read): a valid SSM name segment too, so no parameter may take it.
UNAUTHENTICATED: Final = "unauthenticated"
RESERVED_NAMES: Final = frozenset({UNAUTHENTICATED})
# An SSM name segment's own characters, bounded so that a name is a sensible label value and log field.
CLIENT_NAME_PATTERN: Final = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
_LIMIT_KEYS: Final = frozenset({"token", "rate_limit_rps", "rate_limit_burst"})
MAX_RATE: Final = 1_000_000.0
# The slowest limit: one request per 1,000 s. Below it a wait is meaningless, and a rate such as 1e-320 made the
# wait infinite (a Retry-After of inf: OverflowError, a 500) once the bucket was empty.
MIN_RATE: Final = 0.001


@dataclass(frozen=True, slots=True)
class RateLimit:
    """A token bucket's settings: `rps` tokens a second, at most `burst` held. `rps == 0` means no limit."""

    rps: float
    burst: int

    @classmethod
    def of(cls, rps: float, burst: int | None = None) -> RateLimit:
        """The burst defaults to one second's worth (at least 1), so a steady client never waits."""
        return cls(rps, burst if burst is not None else max(1, math.ceil(rps)))

    @property
    def unlimited(self) -> bool:
        return self.rps == 0


NO_RATE_LIMIT: Final = RateLimit(0.0, 1)


@dataclass(frozen=True, slots=True)
class Client:
    name: str
    rate_limit: RateLimit | None = None  # None: the pod's default (RATE_LIMIT_RPS, RATE_LIMIT_BURST)


@dataclass(frozen=True, slots=True)
class ParameterValue:
    token: str = ""  # never in a repr, so never in a log line
    rate_limit: RateLimit | None = None

    def __repr__(self) -> str:
        return f"ParameterValue(token=<{len(self.token)} characters>, rate_limit={self.rate_limit!r})"


class UnusableValue(ValueError):
    """A parameter value that holds no usable token; the message never quotes the value."""


def parse_value(value: str) -> ParameterValue:
    """A plain token, or a JSON object `{"token": "...", "rate_limit_rps": 5, "rate_limit_burst": 10}`.

    A value that starts with `{` is read as JSON, so a plain token must not start with one. Raises
    UnusableValue (without the value) when it holds no token or a limit is not a number in range.
    """
    if not value.startswith("{"):
        return ParameterValue(value)
    try:
        document = orjson.loads(value)
    except orjson.JSONDecodeError:
        raise UnusableValue("starts with '{' but is not JSON") from None
    if not isinstance(document, dict):
        raise UnusableValue("is not a JSON object")
    unknown = set(document) - _LIMIT_KEYS
    if unknown:
        raise UnusableValue(f"has unknown keys {sorted(unknown)}")
    token = document.get("token")
    if not isinstance(token, str) or not token:
        raise UnusableValue("has no 'token' string")
    rps, burst = document.get("rate_limit_rps"), document.get("rate_limit_burst")
    if rps is None:
        if burst is not None:
            raise UnusableValue("has rate_limit_burst without rate_limit_rps")
        return ParameterValue(token)
    if not _is_number(rps) or not (rps == 0 or MIN_RATE <= rps <= MAX_RATE):
        raise UnusableValue(f"rate_limit_rps must be 0 (no limit) or a number from {MIN_RATE:g} to {MAX_RATE:.0f}")
    if burst is not None and (not isinstance(burst, int) or isinstance(burst, bool) or not 1 <= burst <= MAX_RATE):
        raise UnusableValue(f"rate_limit_burst must be an integer from 1 to {MAX_RATE:.0f}")
    return ParameterValue(token, RateLimit.of(float(rps), burst))


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
