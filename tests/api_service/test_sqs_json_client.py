"""The lean SQS client: its SigV4 signature equals botocore's, and errors look like botocore's."""

from __future__ import annotations

import asyncio
import hashlib
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aioboto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from api_service.sqs.json_client import (
    SigV4Signer,
    SqsJsonClient,
    _checked_batch,
    _error_from,
    session_ssl_context,
)
from devstack.processes import LOOPBACK
from tests.certificates import self_signed_certificate

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


async def _answer_empty_json(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        (int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")),
        0,
    )
    await reader.readexactly(length)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.0\r\nContent-Length: 2\r\n\r\n{}")
    await writer.drain()
    writer.close()


@pytest.mark.parametrize("trusted", [True, False])
async def test_the_client_trusts_the_sessions_ca_bundle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, trusted: bool
) -> None:
    """Our SQS client verifies TLS as botocore's clients do: with AWS_CA_BUNDLE when it is set (a proxy's or a
    private endpoint's CA), else with the system's CAs, which do not know this server's certificate."""
    cert, key = self_signed_certificate(tmp_path)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    server = await asyncio.start_server(_answer_empty_json, LOOPBACK, 0, ssl=server_context)
    port = server.sockets[0].getsockname()[1]
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    if trusted:
        monkeypatch.setenv("AWS_CA_BUNDLE", str(cert))
    else:
        monkeypatch.delenv("AWS_CA_BUNDLE", raising=False)
    credentials = Credentials("AKIDEXAMPLE", "secret")

    async def frozen() -> Any:
        return credentials.get_frozen_credentials()

    client = SqsJsonClient(
        endpoint_url=f"https://{LOOPBACK}:{port}/",
        region="eu-west-1",
        credentials=frozen,
        max_connections=1,
        ssl_context=session_ssl_context(aioboto3.Session()),
    )
    try:
        if trusted:
            assert await client.call("GetQueueUrl", {"QueueName": "q"}) == {}
        else:
            with pytest.raises(ssl.SSLCertVerificationError):
                await client.call("GetQueueUrl", {"QueueName": "q"})
    finally:
        await client.aclose()
        server.close()
        await server.wait_closed()
