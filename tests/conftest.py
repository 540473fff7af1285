"""Fixtures that start real servers on free 127.0.0.1 ports and stop them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.bootstrap import DUMMY_CREDENTIALS, Resources, StackNames, bootstrap
from devstack.emulator import MotoServer


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """One moto server process for the session; each test gets its own resources in it."""
    server = MotoServer(log_path=Path(tmp_path_factory.mktemp("moto")) / "moto.log")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def stack_names() -> StackNames:
    suffix = uuid.uuid4().hex[:10]
    return StackNames(
        queue=f"emails-{suffix}",
        dead_letter_queue=f"emails-{suffix}-dlq",
        bucket=f"emails-{suffix}",
        token_parameter=f"/email-ingest/{suffix}/api-token",
    )


@pytest.fixture
def api_token() -> str:
    return f"tok-{uuid.uuid4().hex}"


@pytest.fixture
def aws_resources(moto_server: MotoServer, stack_names: StackNames, api_token: str) -> Resources:
    return bootstrap(moto_server.endpoint_url, api_token, stack_names)


@pytest.fixture
def aws_env(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """Points in-process AWS clients (aioboto3 sessions created in the test) at the moto server."""
    for key, value in DUMMY_CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.endpoint_url)
    for variable in ("AWS_PROFILE", "AWS_ENDPOINT_URL_SQS", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_SSM"):
        monkeypatch.delenv(variable, raising=False)
    return moto_server.endpoint_url
