"""The consumer's one S3 adapter: conditional PutObject into the bucket, each call counted once."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Protocol

from ingest_common.aws import AwsCallMetrics, error_code, http_status

if TYPE_CHECKING:
    from types_aiobotocore_s3.client import S3Client


def key_exists(exc: BaseException) -> bool:
    """Whether a `put_new` failed because the key is already there (412 PreconditionFailed)."""
    return http_status(exc) == 412 or error_code(exc) == "PreconditionFailed"


class ObjectStore(Protocol):
    async def put_new(self, key: str, body: bytes, *, content_type: str = "application/json") -> None:
        """Stores the object unless the key exists: raises ClientError 412 PreconditionFailed then."""
        ...


class S3Store:
    def __init__(self, client: S3Client, bucket: str, aws_metrics: AwsCallMetrics) -> None:
        self._client = client
        self._bucket = bucket
        self._aws = aws_metrics

    async def put_new(self, key: str, body: bytes, *, content_type: str = "application/json") -> None:
        await self._aws.call(
            "s3",
            "PutObject",
            partial(
                self._client.put_object,
                Bucket=self._bucket,
                Key=key,
                Body=body,
                ContentType=content_type,
                IfNoneMatch="*",  # never overwrite: a redelivered message finds its email stored (412)
            ),
        )
