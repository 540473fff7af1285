"""Faults against the real processes, each with exact accounting: acknowledged (HTTP 200) vs stored in S3.

Each test sends its emails dated on its own day, so that its objects live under their own prefix
(`emails/YYYY/MM/DD/`), and checks: every acknowledged email_id stored exactly once (the bucket is versioned,
so an overwrite would show as a second version) with exactly the content sent, nothing stored that was not
acknowledged.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from datetime import date

import pytest

from devstack import accounting
from devstack.faultproxy import Mode
from devstack.processes import http_status
from devstack.sender import send_all
from tests.aws_helpers import wait_for
from tests.reliability.harness import (
    PUBLISH_DEADLINE_SECONDS,
    TOKEN_MAX_STALENESS_SECONDS,
    FaultyPipeline,
    Reply,
    emails_for,
    post_all,
    settle_and_verify,
    statuses,
)

# A 503 must come within the publish deadline; allow for a loaded 2-core machine on top.
ANSWER_MARGIN_SECONDS = 1.5


def _assert_clear_503s(replies: list[Reply], *, within: float) -> None:
    for reply in replies:
        assert reply.status == 503, reply
        assert reply.headers.get("Retry-After", "").isdigit(), reply.headers
        assert reply.body["type"].endswith("/service-unavailable"), reply.body
        assert reply.seconds <= within, f"503 after {reply.seconds:.2f} s, later than {within} s"


def _assert_exact(verdict: object, acknowledged: int) -> None:
    line = f"acknowledged {acknowledged}, stored {acknowledged}, missing 0, duplicates 0"
    assert verdict.line() == line, verdict.details  # type: ignore[attr-defined]
    assert (verdict.unexpected, verdict.mismatched) == (0, 0), verdict.details  # type: ignore[attr-defined]


def test_consumer_sigkilled_mid_batch_loses_and_duplicates_nothing(healthy: FaultyPipeline) -> None:
    pipeline = healthy
    day, count, kills_wanted = date(2030, 1, 1), 200, 3
    run_id = uuid.uuid4().hex[:8]
    ledger = accounting.Ledger()
    emails = emails_for(run_id, count, day)
    results: dict[int, int] = {}

    def send() -> None:
        results.update(
            asyncio.run(
                send_all(
                    pipeline.api_url, pipeline.token, emails, run_id=run_id, ledger=ledger, concurrency=8, retry=False
                )
            )
        )

    sender = threading.Thread(target=send)
    sender.start()
    kills: list[float] = []  # messages in flight in the consumer at each kill
    deadline = time.monotonic() + 60
    while len(kills) < kills_wanted and time.monotonic() < deadline:
        in_flight = pipeline.consumer_metric("email_ingest_consumer_messages_in_flight")
        if in_flight > 0:
            assert pipeline.stack.consumer is not None
            pipeline.stack.consumer.kill()  # SIGKILL: no drain, no deletes, receipts abandoned
            kills.append(in_flight)
            time.sleep(0.5)
            pipeline.stack.start_consumer()
            time.sleep(1.0)  # let it take a batch before the next kill
        else:
            time.sleep(0.02)
    sender.join(60)
    assert len(kills) == kills_wanted, f"could not kill the consumer mid-batch {kills_wanted} times: {kills}"
    assert results == {200: count}
    verdict = settle_and_verify(pipeline, ledger, day)
    _assert_exact(verdict, count)
    assert pipeline.wait_queue_empty() == (0, 0)
    assert accounting.queue_depths(pipeline.sqs(), pipeline.dlq_url) == (0, 0)


def test_sqs_cut_off_then_slow_api_sheds_with_503_and_recovers(healthy: FaultyPipeline) -> None:
    pipeline = healthy
    proxy = pipeline.proxies["sqs"]
    day = date(2030, 1, 2)
    run_id = uuid.uuid4().hex[:8]
    ledger = accounting.Ledger()
    within = PUBLISH_DEADLINE_SECONDS + ANSWER_MARGIN_SECONDS

    before = post_all(pipeline, emails_for(run_id, 30, day), run_id=run_id, ledger=ledger)
    assert statuses(before) == {200: 30}

    proxy.set_mode(Mode.REFUSE)
    refused = post_all(pipeline, emails_for(run_id, 20, day, start=100), run_id=run_id, ledger=ledger)
    _assert_clear_503s(refused, within=within)
    assert http_status(f"{pipeline.api_url}/healthz") == 200

    proxy.set_mode(Mode.BLACKHOLE)
    stalled = post_all(pipeline, emails_for(run_id, 10, day, start=200), run_id=run_id, ledger=ledger)
    _assert_clear_503s(stalled, within=within)
    assert pipeline.api_metric("email_ingest_api_requests_shed_total", {"reason": "publish_failed"}) >= 30

    proxy.set_mode(Mode.LATENCY, latency=0.3)
    slow = post_all(pipeline, emails_for(run_id, 20, day, start=300), run_id=run_id, ledger=ledger)
    assert statuses(slow) == {200: 20}
    assert min(reply.seconds for reply in slow) >= 0.3

    proxy.set_mode(Mode.PASS)
    after = post_all(pipeline, emails_for(run_id, 30, day, start=400), run_id=run_id, ledger=ledger)
    assert statuses(after) == {200: 30}, "the API did not recover by itself"

    assert len(ledger.acknowledged) == 80
    # Every 200 is stored (the consumer resumed after the cut), and nothing that got a 503 is.
    _assert_exact(settle_and_verify(pipeline, ledger, day), 80)
    assert pipeline.wait_queue_empty() == (0, 0)


def test_s3_failing_deletes_nothing_and_stores_everything_after(healthy: FaultyPipeline) -> None:
    pipeline = healthy
    proxy = pipeline.proxies["s3"]
    day, count = date(2030, 1, 3), 100
    run_id = uuid.uuid4().hex[:8]
    ledger = accounting.Ledger()
    deleted_before = pipeline.consumer_metric("email_ingest_consumer_messages_deleted_total")
    failures_before = pipeline.consumer_metric("email_ingest_consumer_processing_failures_total")

    proxy.set_mode(Mode.REFUSE)
    replies = post_all(pipeline, emails_for(run_id, count, day), run_id=run_id, ledger=ledger)
    assert statuses(replies) == {200: count}
    messages = len({reply.body["message_id"] for reply in replies})  # concurrent requests share packed messages
    failures = "email_ingest_consumer_processing_failures_total"
    wait_for(  # as many failed puts as emails: the consumer has been at them while S3 refused
        lambda: pipeline.consumer_metric(failures) >= failures_before + count, timeout=60, message="refused puts"
    )
    s3 = pipeline.s3()
    assert accounting.count_objects(s3, pipeline.bucket, "emails/2030/01/03/") == 0
    proxy.set_mode(Mode.BLACKHOLE)
    dropped_before = proxy.stats().dropped_bytes
    wait_for(lambda: proxy.stats().dropped_bytes > dropped_before, timeout=30, message="puts into the blackhole")
    assert accounting.count_objects(s3, pipeline.bucket, "emails/2030/01/03/") == 0
    assert pipeline.consumer_metric("email_ingest_consumer_messages_deleted_total") == deleted_before
    assert pipeline.consumer_metric("email_ingest_consumer_processing_failures_total") > failures_before
    # The queue's visible and in-flight counts are read one after the other, so a message whose visibility runs
    # out in between is in neither: look again for a moment. A deleted message would never come back.
    depth_deadline = time.monotonic() + 5
    while sum(pipeline.queue_depth()) != messages and time.monotonic() < depth_deadline:
        time.sleep(0.2)
    assert sum(pipeline.queue_depth()) == messages, "a message was deleted while S3 was failing"

    proxy.set_mode(Mode.PASS)
    _assert_exact(settle_and_verify(pipeline, ledger, day), count)
    assert pipeline.wait_queue_empty() == (0, 0)
    # Each message deleted after its store (a redelivered copy may be deleted once more: at least, not exactly).
    assert pipeline.consumer_metric("email_ingest_consumer_messages_deleted_total") >= deleted_before + messages


@pytest.mark.parametrize("mode", [Mode.REFUSE, Mode.BLACKHOLE])
def test_ssm_failing_serves_the_cached_token_then_503_then_recovers(healthy: FaultyPipeline, mode: Mode) -> None:
    pipeline = healthy
    proxy = pipeline.proxies["ssm"]
    day = date(2030, 1, 4) if mode is Mode.REFUSE else date(2030, 1, 5)
    run_id = uuid.uuid4().hex[:8]
    ledger = accounting.Ledger()
    assert statuses(post_all(pipeline, emails_for(run_id, 5, day), run_id=run_id, ledger=ledger)) == {200: 5}

    proxy.set_mode(mode)
    started = time.monotonic()
    # The last good load is at most ~1.1 s old, so the cached token is good for ~1.9 s more: these requests
    # (checked on arrival, at once) must be served with it.
    cached = post_all(pipeline, emails_for(run_id, 5, day, start=10), run_id=run_id, ledger=ledger)
    assert statuses(cached) == {200: 5}

    time.sleep(max(0.0, started + TOKEN_MAX_STALENESS_SECONDS + 1.5 - time.monotonic()))
    stale = post_all(pipeline, emails_for(run_id, 5, day, start=20), run_id=run_id, ledger=ledger)
    _assert_clear_503s(stale, within=2.0)  # no AWS call on this path: answered at once
    assert all(reply.headers["Retry-After"] == "5" for reply in stale)
    wrong = asyncio.run(_post_with_token(pipeline, "not-the-token"))
    assert wrong.status == 503, "past the staleness limit a wrong token must not be told apart (401)"
    assert http_status(f"{pipeline.api_url}/readyz") == 503
    assert pipeline.api_metric("email_ingest_token_loaded") == 0

    proxy.set_mode(Mode.PASS)
    recovered_after = _wait_for_200(pipeline, run_id, day, ledger, timeout=10)
    assert recovered_after < 5, f"recovered only after {recovered_after:.1f} s"
    assert http_status(f"{pipeline.api_url}/readyz") == 200
    acknowledged = len(ledger.acknowledged)
    assert acknowledged == 11
    _assert_exact(settle_and_verify(pipeline, ledger, day), acknowledged)


async def _post_with_token(pipeline: FaultyPipeline, token: str) -> Reply:
    import aiohttp

    data = accounting.make_email("wrong", 0, day=date(2030, 1, 9))
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{pipeline.api_url}/api/email", json={"data": data, "token": token}) as response,
    ):
        return Reply(response.status, await response.json(content_type=None), 0.0, dict(response.headers))


def _wait_for_200(pipeline: FaultyPipeline, run_id: str, day: date, ledger: object, *, timeout: float) -> float:
    started = time.monotonic()
    index = 1000
    while time.monotonic() - started < timeout:
        replies = post_all(pipeline, emails_for(run_id, 1, day, start=index), run_id=run_id, ledger=ledger)
        index += 1
        if replies[0].status == 200:
            return time.monotonic() - started
        assert replies[0].status == 503, replies[0]
        time.sleep(0.2)
    pytest.fail(f"the API did not recover within {timeout} s of SSM coming back")
