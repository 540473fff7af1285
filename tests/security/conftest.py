"""One faulty pipeline for the security tests, with a recognisable token and debug logging everywhere."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.reliability.harness import FaultyPipeline, pipeline_fixture

CANARY_PREFIX = "CANARYTOKEN"
# Longer than the reliability suite's 3 s: the SSM fault proxy runs in the test process, and the hostile tests
# keep that process busy (1,000 sockets, 20,000-key documents) long enough to delay a refresh past 3 s.
TOKEN_MAX_STALENESS_SECONDS = 10.0


@pytest.fixture(scope="package")
def canary_token() -> str:
    return f"{CANARY_PREFIX}-{uuid.uuid4().hex}"


@pytest.fixture(scope="package")
def secured(tmp_path_factory: pytest.TempPathFactory, canary_token: str) -> Iterator[FaultyPipeline]:
    yield from pipeline_fixture(
        tmp_path_factory.mktemp("security-logs"),
        token=canary_token,
        api_env={"LOG_LEVEL": "debug", "TOKEN_MAX_STALENESS_SECONDS": str(TOKEN_MAX_STALENESS_SECONDS)},
        consumer_env={"LOG_LEVEL": "debug"},
    )


@pytest.fixture
def pipeline(secured: FaultyPipeline) -> FaultyPipeline:
    secured.reset_faults()
    secured.ensure_consumer()
    if secured.stack.api is None or not secured.stack.api.running():
        secured.stack.start_api()
    return secured
