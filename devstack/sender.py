"""A well-behaved client of the API for the soak and the reliability tests: one Idempotency-Key per email,
retrying 503s (honouring Retry-After) and connection errors, every answer written to a Ledger."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import aiohttp

from api_service.clients import DEFAULT_CLIENT
from api_service.ids import email_id_for
from devstack.accounting import Acknowledged, Ledger

CLIENT_RETRY_AFTER_CAP_SECONDS = 2.0  # honour Retry-After, capped so that a run keeps its pace
CLIENT_GIVE_UP_SECONDS = 120.0  # one email's retry budget in the client


async def post_email(
    session: aiohttp.ClientSession,
    api_url: str,
    token: str,
    data: dict[str, Any],
    *,
    idempotency_key: str,
    ledger: Ledger,
) -> tuple[int, dict[str, Any], float]:
    """One POST, always with a key (its retries must map to one object); returns (status, JSON body or {},
    seconds). Connection errors come back as status 0."""
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": idempotency_key}
    started = time.monotonic()
    try:
        async with session.post(f"{api_url}/api/email", json={"data": data}, headers=headers) as response:
            body = await response.read()
            status = response.status
            retry_after = response.headers.get("Retry-After")
    except (aiohttp.ClientError, TimeoutError):
        with ledger.lock:
            ledger.connection_errors += 1
        return 0, {}, time.monotonic() - started
    elapsed = time.monotonic() - started
    ledger.record(status, elapsed)
    try:
        document: dict[str, Any] = json.loads(body) if body else {}
    except ValueError:
        document = {}
    if status == 503 and not (retry_after and retry_after.isdigit()):
        ledger.problem(f"503 without a numeric Retry-After: {retry_after!r}")
    if status == 503:
        document["_retry_after"] = int(retry_after) if retry_after and retry_after.isdigit() else 1
    return status, document, elapsed


async def send_email(
    session: aiohttp.ClientSession,
    api_url: str,
    token: str,
    index: int,
    data: dict[str, Any],
    *,
    run_id: str,
    ledger: Ledger,
    retry: bool,
) -> int:
    """Sends one email; with `retry`, retries 503s and connection errors until acknowledged. Returns the status."""
    key = f"{run_id}-{index}"
    give_up_at = time.monotonic() + CLIENT_GIVE_UP_SECONDS
    while True:
        status, document, _ = await post_email(session, api_url, token, data, idempotency_key=key, ledger=ledger)
        if status == 200:
            email_id = str(document.get("email_id", ""))
            if email_id != email_id_for(DEFAULT_CLIENT, key) or not document.get("message_id"):
                ledger.problem(f"200 with an unexpected body for #{index}: {document}")
            ledger.acknowledge(Acknowledged(index, email_id, str(document.get("message_id")), data))
            return status
        if status not in {0, 503}:
            ledger.problem(f"#{index}: unexpected status {status}: {document}")
            return status
        if not retry or time.monotonic() > give_up_at:
            if retry:
                ledger.gave_up.append(index)
            return status
        wait = min(float(document.get("_retry_after", 1)), CLIENT_RETRY_AFTER_CAP_SECONDS) if status else 0.2
        await asyncio.sleep(wait * random.uniform(0.5, 1.0))  # noqa: S311 - jitter


async def send_all(
    api_url: str,
    token: str,
    emails: Sequence[tuple[int, dict[str, Any]]],
    *,
    run_id: str,
    ledger: Ledger,
    concurrency: int = 16,
    retry: bool = True,
    on_progress: Callable[[int], None] | None = None,
    rate: float | None = None,
) -> Counter[int]:
    """Sends every email with `concurrency` requests in flight (at most `rate` new ones a second).

    Returns how many ended with each final status.
    """
    results: Counter[int] = Counter()
    loop = asyncio.get_running_loop()
    started = loop.time()
    position = [0]
    queue: asyncio.Queue[tuple[int, dict[str, Any]]] = asyncio.Queue()
    for item in emails:
        queue.put_nowait(item)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency), timeout=timeout) as session:

        async def worker() -> None:
            while not queue.empty():
                index, data = queue.get_nowait()
                if rate:
                    position[0] += 1
                    delay = started + position[0] / rate - loop.time()
                    if delay > 0:
                        await asyncio.sleep(delay)
                status = await send_email(
                    session, api_url, token, index, data, run_id=run_id, ledger=ledger, retry=retry
                )
                results[status] += 1
                if on_progress is not None:
                    on_progress(sum(results.values()))

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return results
