"""Where the API's tokens come from: SSM SecureStrings, every version still accepted, with the time SSM recorded
for each. One parameter (TOKEN_PARAMETER_NAME, the client `default`) and every parameter under a path
(TOKEN_PARAMETER_PATH, one client each, named by the parameter's last path segment)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from itertools import pairwise
from typing import TYPE_CHECKING, Any

from api_service.clients import DEFAULT_CLIENT
from ingest_common.aws import AwsCallMetrics

if TYPE_CHECKING:
    from types_aiobotocore_ssm.client import SSMClient
    from types_aiobotocore_ssm.type_defs import (
        GetParameterHistoryRequestTypeDef,
        GetParametersByPathRequestTypeDef,
        ParameterHistoryTypeDef,
        ParameterTypeDef,
    )

_PAGE_SIZE = 50  # GetParameterHistory's maximum; SSM keeps at most 100 versions, so two calls at most
_SELECTORS_PER_CALL = 10  # GetParameters' maximum
_PATH_PAGE_SIZE = 10  # GetParametersByPath's maximum


@dataclass(frozen=True, slots=True)
class TokenVersion:
    version: int
    value: str = field(repr=False)  # the secret itself: never in a repr, so never in a log line or a traceback
    last_modified: datetime  # when SSM recorded this version (timezone-aware)


@dataclass(frozen=True, slots=True)
class ClientParameter:
    """One client's parameter: its versions still accepted (oldest first), or why none can be."""

    client: str  # `default` for TOKEN_PARAMETER_NAME; the last path segment under TOKEN_PARAMETER_PATH
    versions: list[TokenVersion]
    secure: bool = True  # a String or StringList under the path is no token: the cache refuses it
    single: bool = False  # TOKEN_PARAMETER_NAME's: an unusable latest value fails the load instead of refusing it


def _version(parameter: ParameterHistoryTypeDef | ParameterTypeDef, *, value: str) -> TokenVersion:
    modified = parameter.get("LastModifiedDate")
    if modified is None:
        raise ValueError("SSM returned a parameter version without LastModifiedDate")
    if modified.tzinfo is None:  # botocore returns aware datetimes; a naive one can only be UTC
        modified = modified.replace(tzinfo=UTC)
    return TokenVersion(int(parameter.get("Version", 0)), value, modified)


class SsmTokenSource:
    """The SSM adapter: the clients' parameters, each with the values of only those versions the API can still
    accept (the latest, and those whose successor was written less than the grace ago).

    The single parameter: its history without values, then those versions' values. `GetParameterHistory` with
    decryption would decrypt every version SSM keeps (up to 100, one KMS decrypt each) on every refresh of every
    pod; this way a refresh decrypts one version, two during a rotation.
    The path: `GetParametersByPath` (every page, decrypted) gives each parameter's latest version; only a
    parameter whose latest version was written less than the grace ago can have an earlier one still accepted,
    and only for those the history is read as for the single parameter.
    """

    def __init__(
        self,
        ssm: SSMClient,
        aws_metrics: AwsCallMetrics,
        *,
        parameter_name: str | None,
        parameter_path: str | None = None,
        rotation_grace_seconds: float,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._ssm = ssm
        self._name = parameter_name
        self._path = parameter_path
        self._aws_metrics = aws_metrics
        self._grace = rotation_grace_seconds
        self._wall_clock = wall_clock

    async def clients(self) -> list[ClientParameter]:
        """The single parameter's client first (when configured), then the path's by name."""
        found: list[ClientParameter] = []
        if self._name:
            found.append(ClientParameter(DEFAULT_CLIENT, await self.versions(self._name), single=True))
        if self._path:
            now = self._wall_clock()
            by_name = sorted(await self._parameters_by_path(self._path), key=lambda found: found.get("Name", ""))
            for parameter in by_name:
                name = parameter.get("Name", "")
                client = name.rsplit("/", 1)[-1]
                if parameter.get("Type") != "SecureString":
                    found.append(ClientParameter(client, [], secure=False))
                    continue
                latest = _version(parameter, value=str(parameter.get("Value", "")))
                in_rotation = latest.version > 1 and now < latest.last_modified.timestamp() + self._grace
                found.append(ClientParameter(client, await self.versions(name) if in_rotation else [latest]))
        return found

    async def _pages(
        self, operation: str, method: Callable[..., Awaitable[Any]], arguments: Mapping[str, Any]
    ) -> AsyncIterator[Mapping[str, Any]]:
        """Every page of a paginated SSM call, each call counted (botocore's paginators would hide the calls)."""
        next_token: str | None = None
        while True:
            page_arguments = {**arguments, "NextToken": next_token} if next_token else dict(arguments)
            request = partial(method, **page_arguments)
            response: Mapping[str, Any] = await self._aws_metrics.call("ssm", operation, request)
            yield response
            next_token = response.get("NextToken")
            if not next_token:
                return

    async def _parameters_by_path(self, path: str) -> list[ParameterTypeDef]:
        """The parameters right under `path` (not below: a name is one segment), decrypted, every page."""
        arguments: GetParametersByPathRequestTypeDef = {
            "Path": path,
            "Recursive": False,
            "WithDecryption": True,
            "MaxResults": _PATH_PAGE_SIZE,
        }
        parameters: list[ParameterTypeDef] = []
        async for page in self._pages("GetParametersByPath", self._ssm.get_parameters_by_path, arguments):
            parameters.extend(page.get("Parameters", []))
        return parameters

    async def versions(self, name: str) -> list[TokenVersion]:
        """Every version SSM holds of one parameter, oldest first; `value` is empty for those past their grace."""
        history = sorted(await self._history(name), key=lambda version: version.version)
        now = self._wall_clock()
        wanted = [history[-1].version] if history else []
        wanted += [
            older.version for older, newer in pairwise(history) if now < newer.last_modified.timestamp() + self._grace
        ]
        values = await self._values(name, wanted)
        return [
            TokenVersion(version.version, values.get(version.version, ""), version.last_modified) for version in history
        ]

    async def _history(self, name: str) -> list[TokenVersion]:
        arguments: GetParameterHistoryRequestTypeDef = {"Name": name, "WithDecryption": False, "MaxResults": _PAGE_SIZE}
        versions: list[TokenVersion] = []
        async for page in self._pages("GetParameterHistory", self._ssm.get_parameter_history, arguments):
            versions.extend(_version(parameter, value="") for parameter in page["Parameters"])
        return versions

    async def _values(self, name: str, versions: list[int]) -> dict[int, str]:
        """The decrypted values of these versions, by `name:version` selectors (GetParameters takes 10)."""
        values: dict[int, str] = {}
        for start in range(0, len(versions), _SELECTORS_PER_CALL):
            names = [f"{name}:{version}" for version in versions[start : start + _SELECTORS_PER_CALL]]
            request = partial(self._ssm.get_parameters, Names=names, WithDecryption=True)
            response = await self._aws_metrics.call("ssm", "GetParameters", request)
            for parameter in response.get("Parameters", []):
                values[int(parameter.get("Version", 0))] = str(parameter.get("Value", ""))
        return values
