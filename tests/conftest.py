"""Fixtures that start real servers on free 127.0.0.1 ports and stop them, and the `integration` marker.

A test that uses one of these fixtures (or one of the reliability and security suites' pipelines) is marked
`integration` at collection; modules that start processes by themselves carry the marker explicitly.
`make test-fast` runs what is left with --no-processes, under which a test that starts a process fails.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from devstack.bootstrap import DUMMY_CREDENTIALS, Resources, StackNames, bootstrap
from devstack.elasticmq import ElasticMQServer
from devstack.emulator import MotoServer
from tests.support import Cleanups


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
    return StackNames.unique("emails")


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


# Fixtures that start (or stand on) a server process: a test using any of them is an integration test.
SERVER_FIXTURES = frozenset(
    {"moto_server", "elasticmq_server", "sqs_endpoint", "aws_resources", "aws_env", "pipeline", "secured", "healthy"}
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if fixtures & SERVER_FIXTURES or item.get_closest_marker("tools") is not None:
            item.add_marker(pytest.mark.integration)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--no-processes",
        action="store_true",
        help="fail any test that starts a process (make test-fast: proves the unmarked tests start none)",
    )


@pytest.fixture(autouse=True)
def _no_processes(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if not request.config.getoption("--no-processes"):
        return

    def refuse(self: subprocess.Popen[Any], args: Any, *_: Any, **__: Any) -> None:
        raise AssertionError(f"this test started a process ({args!r}): mark it integration")

    monkeypatch.setattr(subprocess.Popen, "__init__", refuse)


@pytest.fixture
async def cleanups() -> AsyncIterator[Cleanups]:
    """Stops what a test started (tasks, heartbeats, deleters), last started first, even when the test fails."""
    registered: Cleanups = []
    yield registered
    for cleanup in reversed(registered):
        await cleanup()
