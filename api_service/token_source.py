"""Where the API token comes from: every version of one SSM SecureString, with the time SSM recorded for each."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from itertools import pairwise
from typing import TYPE_CHECKING

from ingest_common.aws import AwsCallMetrics

if TYPE_CHECKING:
    from types_aiobotocore_ssm.client import SSMClient
    from types_aiobotocore_ssm.type_defs import GetParameterHistoryRequestTypeDef, ParameterHistoryTypeDef

_PAGE_SIZE = 50  # GetParameterHistory's maximum; SSM keeps at most 100 versions, so two calls at most
_SELECTORS_PER_CALL = 10  # GetParameters' maximum


@dataclass(frozen=True, slots=True)
class TokenVersion:
    version: int
    value: str = field(repr=False)  # the secret itself: never in a repr, so never in a log line or a traceback
    last_modified: datetime  # when SSM recorded this version (timezone-aware)


def _version(parameter: ParameterHistoryTypeDef, *, value: str) -> TokenVersion:
    modified = parameter.get("LastModifiedDate")
    if modified is None:
        raise ValueError("GetParameterHistory returned a version without LastModifiedDate")
    if modified.tzinfo is None:  # botocore returns aware datetimes; a naive one can only be UTC
        modified = modified.replace(tzinfo=UTC)
    return TokenVersion(int(parameter.get("Version", 0)), value, modified)


class SsmTokenSource:
    """The token parameter's versions: the history without values, then the values of only those versions
    the API can still accept (the latest, and those whose successor was written less than the grace ago).

    `GetParameterHistory` with decryption would decrypt every version SSM keeps (up to 100, one KMS decrypt
    each) on every refresh of every pod; this way a refresh decrypts one version, two during a rotation.
    """

    def __init__(
        self,
        ssm: SSMClient,
        parameter_name: str,
        aws_metrics: AwsCallMetrics,
        *,
        rotation_grace_seconds: float,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._ssm = ssm
        self._name = parameter_name
        self._aws_metrics = aws_metrics
        self._grace = rotation_grace_seconds
        self._wall_clock = wall_clock

    async def versions(self) -> list[TokenVersion]:
        """Every version SSM holds, oldest first; `value` is empty for those past their grace."""
        history = sorted(await self._history(), key=lambda version: version.version)
        now = self._wall_clock()
        wanted = [history[-1].version] if history else []
        wanted += [
            older.version for older, newer in pairwise(history) if now < newer.last_modified.timestamp() + self._grace
        ]
        values = await self._values(wanted)
        return [
            TokenVersion(version.version, values.get(version.version, ""), version.last_modified) for version in history
        ]

    async def _history(self) -> list[TokenVersion]:
        versions: list[TokenVersion] = []
        next_token: str | None = None
        while True:
            arguments: GetParameterHistoryRequestTypeDef = {
                "Name": self._name,
                "WithDecryption": False,
                "MaxResults": _PAGE_SIZE,
            }
            if next_token:
                arguments["NextToken"] = next_token
            request = partial(self._ssm.get_parameter_history, **arguments)
            response = await self._aws_metrics.call("ssm", "GetParameterHistory", request)
            versions.extend(_version(parameter, value="") for parameter in response["Parameters"])
            next_token = response.get("NextToken")
            if not next_token:
                return versions

    async def _values(self, versions: list[int]) -> dict[int, str]:
        """The decrypted values of these versions, by `name:version` selectors (GetParameters takes 10)."""
        values: dict[int, str] = {}
        for start in range(0, len(versions), _SELECTORS_PER_CALL):
            names = [f"{self._name}:{version}" for version in versions[start : start + _SELECTORS_PER_CALL]]
            request = partial(self._ssm.get_parameters, Names=names, WithDecryption=True)
            response = await self._aws_metrics.call("ssm", "GetParameters", request)
            for parameter in response.get("Parameters", []):
                values[int(parameter.get("Version", 0))] = str(parameter.get("Value", ""))
        return values
