"""Fixtures that start real servers on free 127.0.0.1 ports and stop them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.bootstrap import DUMMY_CREDENTIALS, Resources, StackNames, bootstrap
from devstack.elasticmq import ElasticMQServer
from devstack.emulator import MotoServer


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """One moto server process for the session; each test gets its own resources in it."""
    server = MotoServer(log_path=Path(tmp_path_factory.mktemp("moto")) / "moto.log")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def elasticmq_server() -> Iterator[ElasticMQServer]:
    """ElasticMQ, a real SQS server (JVM), started once for the tests that ask for it."""
    server = ElasticMQServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(params=["moto", "elasticmq"])
def sqs_endpoint(request: pytest.FixtureRequest, moto_server: MotoServer) -> str:
    """The SQS endpoint of an integration test: each runs against moto and against ElasticMQ."""
    if request.param == "moto":
        return moto_server.endpoint_url
    server: ElasticMQServer = request.getfixturevalue("elasticmq_server")
    return server.endpoint_url


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
def aws_resources(moto_server: MotoServer, sqs_endpoint: str, stack_names: StackNames, api_token: str) -> Resources:
    return bootstrap(moto_server.endpoint_url, api_token, stack_names, sqs_endpoint_url=sqs_endpoint)


@pytest.fixture
def aws_env(moto_server: MotoServer, sqs_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Points in-process AWS clients at the emulators: moto for SSM and S3, `sqs_endpoint` for SQS.

    Returns moto's endpoint; tests reach SQS through `sqs_endpoint`.
    """
    for key, value in DUMMY_CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.endpoint_url)
    for variable in ("AWS_PROFILE", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_SSM"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", sqs_endpoint)
    return moto_server.endpoint_url
