"""One faulty pipeline for the package's tests; each test uses its own day prefix in the bucket."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.reliability.harness import FaultyPipeline, pipeline_fixture


@pytest.fixture(scope="package")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultyPipeline]:
    yield from pipeline_fixture(tmp_path_factory.mktemp("reliability-logs"))


@pytest.fixture
def healthy(pipeline: FaultyPipeline) -> FaultyPipeline:
    """The pipeline with every fault cleared, the consumer running and the queue drained."""
    pipeline.reset_faults()
    pipeline.ensure_consumer()
    assert pipeline.wait_queue_empty() == (0, 0), "a previous test left messages in the queue"
    return pipeline
