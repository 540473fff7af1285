"""The consumer's one S3 adapter: conditional PutObject into the bucket and HeadObject of what a 412 found, each
call counted once."""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import TYPE_CHECKING, Protocol

from ingest_common.aws import AwsCallMetrics, error_code, http_status

if TYPE_CHECKING:
    from types_aiobotocore_s3.client import S3Client


def key_exists(exc: BaseException) -> bool:
    """Whether a `put_new` failed because the key is already there (412 PreconditionFailed)."""
    return http_status(exc) == 412 or error_code(exc) == "PreconditionFailed"


class ObjectStore(Protocol):
    async def put_new(
        self,
        key: str,
        body: bytes,
        *,
        content_type: str = "application/json",
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        """Stores the object (with its user metadata) unless the key exists: raises ClientError 412
        PreconditionFailed then."""
        ...

    async def metadata(self, key: str) -> Mapping[str, str]:
        """The user metadata of an existing object (HeadObject: the body is not read)."""
        ...


class S3Store:
    def __init__(self, client: S3Client, bucket: str, aws_metrics: AwsCallMetrics) -> None:
        self._client = client
        self._bucket = bucket
        self._aws = aws_metrics

    async def put_new(
        self,
        key: str,
        body: bytes,
        *,
        content_type: str = "application/json",
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        await self._aws.call(
            "s3",
            "PutObject",
            partial(
                self._client.put_object,
                Bucket=self._bucket,
                Key=key,
                Body=body,
                ContentType=content_type,
                Metadata=dict(metadata or {}),
                IfNoneMatch="*",  # never overwrite: a redelivered message finds its email stored (412)
            ),
        )

    async def metadata(self, key: str) -> Mapping[str, str]:
        answer = await self._aws.call(
            "s3", "HeadObject", partial(self._client.head_object, Bucket=self._bucket, Key=key)
        )
        return dict(answer.get("Metadata", {}))
