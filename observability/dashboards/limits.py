"""The services' limits that the dashboards draw as thresholds and name in descriptions.

Read from the defaults of the settings classes (the values a deployment gets without overriding the variable),
so a changed default moves its threshold with it. They are dataclass field defaults, not module-level names, in
api_service/config.py and consumer_service/config.py: read them through ``dataclasses.fields``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from api_service.config import ApiSettings
from consumer_service.config import ConsumerSettings


def default(settings: type[Any], name: str) -> Any:
    """The default of one field of a settings dataclass; a missing field or default is an error."""
    for field in dataclasses.fields(settings):
        if field.name == name:
            if field.default is dataclasses.MISSING:
                raise LookupError(f"{settings.__name__}.{name} has no default")
            return field.default
    raise LookupError(f"{settings.__name__} has no field {name}")


def _whole(value: float) -> float | int:
    """300.0 -> 300: descriptions read "300 s", and whole thresholds stay integers in the JSON."""
    return int(value) if float(value).is_integer() else value


PUBLISH_MAX_PENDING: int = default(ApiSettings, "publish_max_pending")
TOKEN_REFRESH_SECONDS = _whole(default(ApiSettings, "token_refresh_seconds"))
TOKEN_MAX_STALENESS_SECONDS = _whole(default(ApiSettings, "token_max_staleness_seconds"))
CONSUMER_MAX_IN_FLIGHT: int = default(ConsumerSettings, "max_in_flight")
