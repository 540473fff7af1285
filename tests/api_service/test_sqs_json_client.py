"""The lean SQS client: its SigV4 signature equals botocore's, and errors look like botocore's."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from api_service.sqs.json_client import SigV4Signer, _checked_batch, _error_from

NOW = datetime(2026, 11, 22, 18, 51, 11, tzinfo=UTC)


@dataclass(frozen=True)
class ReadOnlyCredentials:
    access_key: str
    secret_key: str
    token: str | None


@pytest.mark.parametrize("token", [None, "session-token/with+odd=chars"])
@pytest.mark.parametrize(
    ("url", "host", "path"),
    [
        ("https://sqs.eu-west-1.amazonaws.com/", "sqs.eu-west-1.amazonaws.com", "/"),
        ("http://127.0.0.1:9324/", "127.0.0.1:9324", "/"),
    ],
)
def test_signature_matches_botocore(
    monkeypatch: pytest.MonkeyPatch, token: str | None, url: str, host: str, path: str
) -> None:
    body = b'{"QueueUrl":"https://sqs/q","Entries":[{"Id":"0","MessageBody":"h\\u00e9llo"}]}'
    frozen = ReadOnlyCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token)
    ours = SigV4Signer(host=host, path=path, region="eu-west-1", service="sqs").headers(
        "AmazonSQS.SendMessageBatch", body, frozen, NOW
    )
    monkeypatch.setattr("botocore.auth.get_current_datetime", lambda: NOW.replace(tzinfo=None))
    request = AWSRequest(
        method="POST",
        url=url,
        data=body,
        headers={"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": "AmazonSQS.SendMessageBatch"},
    )
    SigV4Auth(Credentials(frozen.access_key, frozen.secret_key, token), "sqs", "eu-west-1").add_auth(request)
    assert ours["Authorization"] == request.headers["Authorization"]
    assert ours["X-Amz-Date"] == request.headers["X-Amz-Date"]


def test_signing_key_is_cached_per_day_and_secret() -> None:
    signer = SigV4Signer(host="h", path="/", region="r", service="sqs")
    credentials = ReadOnlyCredentials("a", "secret", None)
    first = signer.headers("T", b"{}", credentials, NOW)["Authorization"]
    assert signer.headers("T", b"{}", credentials, NOW)["Authorization"] == first
    rotated = signer.headers("T", b"{}", ReadOnlyCredentials("a", "other", None), NOW)["Authorization"]
    assert rotated != first


@pytest.mark.parametrize(
    ("headers", "body", "code"),
    [
        ({"x-amzn-query-error": "AWS.SimpleQueueService.NonExistentQueue;Sender"},
         b'{"__type":"com.amazonaws.sqs#QueueDoesNotExist"}', "AWS.SimpleQueueService.NonExistentQueue"),
        ({}, b'{"__type":"com.amazonaws.sqs#RequestThrottled","message":"slow down"}', "RequestThrottled"),
        ({}, b"<html>bad gateway</html>", "HTTP502"),
    ],
)  # fmt: skip
def test_errors_carry_botocores_codes(headers: dict[str, str], body: bytes, code: str) -> None:
    error = _error_from(502 if body.startswith(b"<") else 400, headers, body, "SendMessageBatch")
    assert error.response["Error"]["Code"] == code


def test_md5_mismatch_turns_success_into_a_retryable_failure() -> None:
    entries: list[dict[str, Any]] = [{"Id": "0", "MessageBody": "a"}, {"Id": "1", "MessageBody": "b"}]
    response = {
        "Successful": [
            {"Id": "0", "MessageId": "m0", "MD5OfMessageBody": hashlib.md5(b"a").hexdigest()},
            {"Id": "1", "MessageId": "m1", "MD5OfMessageBody": hashlib.md5(b"corrupted").hexdigest()},
        ]
    }
    checked = _checked_batch(response, entries)
    assert [item["Id"] for item in checked["Successful"]] == ["0"]
    assert checked["Failed"] == [{"Id": "1", "Code": "MD5Mismatch", "SenderFault": False}]
