"""Where the API token comes from: every version of one SSM SecureString, with the time SSM recorded for each."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING

from ingest_common.aws import AwsCallMetrics

if TYPE_CHECKING:
    from types_aiobotocore_ssm.client import SSMClient
    from types_aiobotocore_ssm.type_defs import GetParameterHistoryRequestTypeDef, ParameterHistoryTypeDef

_PAGE_SIZE = 50  # GetParameterHistory's maximum; SSM keeps at most 100 versions, so two calls at most


@dataclass(frozen=True, slots=True)
class TokenVersion:
    version: int
    value: str = field(repr=False)  # the secret itself: never in a repr, so never in a log line or a traceback
    last_modified: datetime  # when SSM recorded this version (timezone-aware)


def _version(parameter: ParameterHistoryTypeDef) -> TokenVersion:
    modified = parameter.get("LastModifiedDate")
    if modified is None:
        raise ValueError("GetParameterHistory returned a version without LastModifiedDate")
    if modified.tzinfo is None:  # botocore returns aware datetimes; a naive one can only be UTC
        modified = modified.replace(tzinfo=UTC)
    return TokenVersion(int(parameter.get("Version", 0)), str(parameter.get("Value", "")), modified)


class SsmTokenSource:
    """Reads the token parameter's history with decryption (`GetParameterHistory`, every page)."""

    def __init__(self, ssm: SSMClient, parameter_name: str, aws_metrics: AwsCallMetrics) -> None:
        self._ssm = ssm
        self._name = parameter_name
        self._aws_metrics = aws_metrics

    async def versions(self) -> list[TokenVersion]:
        """Every version SSM holds, oldest first as SSM lists them."""
        versions: list[TokenVersion] = []
        next_token: str | None = None
        while True:
            arguments: GetParameterHistoryRequestTypeDef = {
                "Name": self._name,
                "WithDecryption": True,
                "MaxResults": _PAGE_SIZE,
            }
            if next_token:
                arguments["NextToken"] = next_token
            request = partial(self._ssm.get_parameter_history, **arguments)
            response = await self._aws_metrics.call("ssm", "GetParameterHistory", request)
            versions.extend(_version(parameter) for parameter in response["Parameters"])
            next_token = response.get("NextToken")
            if not next_token:
                return versions
