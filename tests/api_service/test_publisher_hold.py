"""Unit tests of the publisher's hold rule (PUBLISH_MAX_HOLD_MS): while a call is in flight, a partial call waits
for it to return or for its oldest email to have waited linger + the bound; a full message or call never waits.

The SendMessageBatch stand-in answers a call only when the test releases it, so "a call is in flight" is a
state the test sets up, not a race."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from api_service.metrics import PublisherMetrics
from api_service.publisher import BatchPublisher
from tests.api_service.test_publisher import emails_in, item, message_id_of

WAIT = 5.0  # a generous bound on conditions that must come true (a shared, loaded machine)


class GatedSqs:
    """Accepts every message, but answers call n only once `release(n)` (or `release_all`) was called; records
    each call's entries and the loop time it arrived. `auto_release` answers calls after that many seconds."""

    def __init__(self, auto_release: float | None = None) -> None:
        self.calls: list[list[dict[str, Any]]] = []
        self.arrived_at: list[float] = []
        self._gates: list[asyncio.Event] = []
        self._changed = asyncio.Condition()
        self._open = False
        self._auto_release = auto_release

    def messages(self, call: int) -> list[list[str]]:
        return [[email.rstrip(".") for email in emails_in(entry)] for entry in self.calls[call]]

    def emails(self, call: int) -> list[str]:
        return [email for message in self.messages(call) for email in message]

    async def send_batch(self, entries: list[dict[str, Any]]) -> Mapping[str, Any]:
        loop = asyncio.get_running_loop()
        gate = asyncio.Event()
        if self._open:
            gate.set()
        elif self._auto_release is not None:
            loop.call_later(self._auto_release, gate.set)
        async with self._changed:
            self.calls.append(entries)
            self.arrived_at.append(loop.time())
            self._gates.append(gate)
            self._changed.notify_all()
        await gate.wait()
        return {"Successful": [{"Id": e["Id"], "MessageId": message_id_of(emails_in(e))} for e in entries]}

    async def wait_calls(self, count: int, timeout: float = WAIT) -> None:
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: len(self.calls) >= count), timeout)

    async def no_call_beyond(self, count: int, within: float) -> None:
        """Asserts no call past the first `count` arrives for `within` seconds."""
        with pytest.raises(TimeoutError):
            await self.wait_calls(count + 1, within)

    def release(self, call: int) -> None:
        self._gates[call].set()

    def release_all(self) -> None:
        self._open = True
        for gate in self._gates:
            gate.set()


Start = Callable[..., Awaitable[BatchPublisher]]


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
async def started() -> AsyncIterator[Start]:
    publishers: list[tuple[BatchPublisher, GatedSqs]] = []

    async def start(sqs: GatedSqs, registry: CollectorRegistry, **overrides: Any) -> BatchPublisher:
        settings: dict[str, Any] = {
            "linger_seconds": 0.01,
            "max_batches_in_flight": 16,
            "max_pending": 10_000,
            "deadline_seconds": 30.0,
            "max_hold_seconds": 10.0,
            # The rule's cases below are set up with one call in flight; the default (2) is tested on its own.
            "hold_at_in_flight": 1,
        }
        settings.update(overrides)
        publisher = BatchPublisher(sqs.send_batch, metrics=PublisherMetrics(registry), **settings)
        publishers.append((publisher, sqs))
        publisher.start()
        return publisher

    yield start
    for publisher, sqs in publishers:
        sqs.release_all()
        await publisher.close(2)


def flushes(registry: CollectorRegistry, reason: str) -> float:
    return registry.get_sample_value("email_ingest_publisher_flushes_total", {"reason": reason}) or 0.0


async def test_a_lone_email_on_an_idle_publisher_goes_after_the_linger(
    started: Start, registry: CollectorRegistry
) -> None:
    sqs = GatedSqs()
    sqs.release_all()
    publisher = await started(sqs, registry, linger_seconds=0.02)
    loop = asyncio.get_running_loop()
    began = loop.time()
    assert await publisher.publish(item("solo")) == message_id_of(["solo"])
    assert 0.015 <= sqs.arrived_at[0] - began < 1.0, "no call in flight: the linger, not the 10 s bound"


async def test_a_partial_call_is_held_while_a_call_is_in_flight_and_goes_when_it_returns(
    started: Start, registry: CollectorRegistry
) -> None:
    sqs = GatedSqs()
    publisher = await started(sqs, registry)
    first = asyncio.create_task(publisher.publish(item("a")))
    await sqs.wait_calls(1)
    later = [asyncio.create_task(publisher.publish(item(name))) for name in ("b", "c")]
    await sqs.no_call_beyond(1, within=0.3)  # 30 lingers: b and c wait for the call in flight
    assert not any(task.done() for task in later), "nothing is answered before SQS accepted it"
    sqs.release(0)
    later.append(asyncio.create_task(publisher.publish(item("d"))))  # a's client, answered, sends its next
    await sqs.wait_calls(2)
    assert sqs.messages(1) == [["b", "c", "d"]], "held emails go together a linger after the return, d joining"
    assert first.done() and first.result() == message_id_of(["a"])
    sqs.release(1)
    assert await asyncio.gather(*later) == [message_id_of(["b", "c", "d"])] * 3
    assert flushes(registry, "bound") == 0


async def test_a_held_partial_call_goes_at_the_bound(started: Start, registry: CollectorRegistry) -> None:
    sqs = GatedSqs()
    publisher = await started(sqs, registry, linger_seconds=0.01, max_hold_seconds=0.1)
    asyncio.create_task(publisher.publish(item("a")))  # noqa: RUF006 - the fixture's close answers it
    await sqs.wait_calls(1)  # and it never returns in this test
    loop = asyncio.get_running_loop()
    queued = loop.time()
    held = asyncio.create_task(publisher.publish(item("b")))
    await sqs.wait_calls(2)
    waited = sqs.arrived_at[1] - queued
    assert 0.1 <= waited < 0.11 + 0.5, f"b went {waited:.3f} s after it was queued: linger + bound is 0.11 s"
    assert sqs.emails(1) == ["b"]
    assert flushes(registry, "bound") == 1
    sqs.release(1)
    assert await held == message_id_of(["b"])


async def test_a_full_message_is_never_held(started: Start, registry: CollectorRegistry) -> None:
    """With 64 KiB messages, 70 emails of 1,000 bytes while a call is out: the whole first message goes at once
    (the 10 s bound and the call in flight do not hold it), the partial rest waits for the call to return."""
    sqs = GatedSqs()
    publisher = await started(sqs, registry, max_message_bytes=65_536)
    asyncio.create_task(publisher.publish(item("first")))  # noqa: RUF006 - answered below or by the fixture
    await sqs.wait_calls(1)
    tasks = [asyncio.create_task(publisher.publish(item(f"m{i}", 1000))) for i in range(70)]
    await sqs.wait_calls(2, timeout=2.0)
    whole = sqs.messages(1)
    assert len(whole) == 1 and 60 <= len(whole[0]) < 70, "one whole 64 KiB message, at once"
    assert sum(len(entry["MessageBody"].encode()) for entry in sqs.calls[1]) <= 65_536
    assert flushes(registry, "message") == 1
    await sqs.no_call_beyond(2, within=0.2)  # the rest is a partial message: held
    sqs.release(0)
    await sqs.wait_calls(3)
    assert sqs.emails(1) + sqs.emails(2) == [f"m{i}" for i in range(70)]
    sqs.release_all()
    await asyncio.gather(*tasks)


async def test_a_full_call_is_never_held(started: Start, registry: CollectorRegistry) -> None:
    sqs = GatedSqs()
    publisher = await started(sqs, registry, max_message_bytes=1024)
    asyncio.create_task(publisher.publish(item("first")))  # noqa: RUF006 - answered by the fixture
    await sqs.wait_calls(1)
    tasks = [asyncio.create_task(publisher.publish(item(f"m{i}", 400))) for i in range(26)]
    await sqs.wait_calls(2, timeout=2.0)  # 10 messages of 2: at once, while a call is out and the bound is 10 s
    assert [len(message) for message in sqs.messages(1)] == [2] * 10
    assert flushes(registry, "full") == 1
    await sqs.no_call_beyond(2, within=0.2)  # the 6 left are a partial call: held
    sqs.release_all()
    await sqs.wait_calls(3)
    assert sqs.emails(1) + sqs.emails(2) == [f"m{i}" for i in range(26)]
    await asyncio.gather(*tasks)


async def test_the_drain_never_holds(started: Start, registry: CollectorRegistry) -> None:
    sqs = GatedSqs()
    publisher = await started(sqs, registry)
    first = asyncio.create_task(publisher.publish(item("a")))
    await sqs.wait_calls(1)
    held = [asyncio.create_task(publisher.publish(item(name))) for name in ("b", "c")]
    await sqs.no_call_beyond(1, within=0.1)
    closing = asyncio.create_task(publisher.close(WAIT))
    await sqs.wait_calls(2, timeout=1.0)  # the call in flight has not returned and the bound is 10 s
    assert sqs.messages(1) == [["b", "c"]]
    assert flushes(registry, "drain") == 1
    sqs.release_all()
    await closing
    assert [task.result() for task in (first, *held)] == [message_id_of(["a"])] + [message_id_of(["b", "c"])] * 2


@pytest.mark.parametrize("max_hold", [0.0, 0.1])
async def test_each_email_waits_at_most_the_linger_plus_the_bound(
    started: Start, registry: CollectorRegistry, max_hold: float
) -> None:
    """Emails arrive every 7 ms while SQS answers in 40 ms (slower than the 10 ms linger): none waits past
    linger + bound for its call, and holding gathers them into fewer calls than sending at the linger."""
    linger, spacing, count = 0.01, 0.007, 40
    sqs = GatedSqs(auto_release=0.04)
    publisher = await started(sqs, registry, linger_seconds=linger, max_hold_seconds=max_hold)
    loop = asyncio.get_running_loop()
    queued: dict[str, float] = {}
    tasks: list[asyncio.Task[str]] = []
    all_queued = asyncio.Event()

    def publish(name: str) -> None:
        queued[name] = loop.time()
        tasks.append(asyncio.create_task(publisher.publish(item(name))))
        if len(tasks) == count:
            all_queued.set()

    start = loop.time()
    for i in range(count):
        loop.call_at(start + i * spacing, publish, f"m{i}")
    async with asyncio.timeout(WAIT):
        await all_queued.wait()
        await asyncio.gather(*tasks)
    waits = {
        email: sqs.arrived_at[call] - queued[email] for call in range(len(sqs.calls)) for email in sqs.emails(call)
    }
    assert sorted(waits) == sorted(queued), "every email was sent once"
    worst = max(waits.values())
    assert worst < linger + max_hold + 0.05, f"an email waited {worst:.3f} s for its call"
    if max_hold:
        assert len(sqs.calls) <= 12, f"{len(sqs.calls)} calls for {count} emails: held emails share calls"
    else:
        assert len(sqs.calls) >= 14, f"{len(sqs.calls)} calls: the old rule sends at every linger"


async def test_by_default_one_call_in_flight_holds_nothing_and_two_hold_a_partial_call(
    started: Start, registry: CollectorRegistry
) -> None:
    """hold_at_in_flight=2 (the default): with one call out the next partial call goes at the linger, so the API's
    work overlaps SQS's round trip; with two out a partial call is held until one returns."""
    sqs = GatedSqs()
    publisher = await started(sqs, registry, hold_at_in_flight=2)
    tasks = [asyncio.create_task(publisher.publish(item("a")))]
    await sqs.wait_calls(1)
    tasks.append(asyncio.create_task(publisher.publish(item("b"))))
    await sqs.wait_calls(2, timeout=1.0)  # one call out: b goes at the linger, not at the 10 s bound
    assert sqs.emails(1) == ["b"]
    tasks += [asyncio.create_task(publisher.publish(item(name))) for name in ("c", "d")]
    await sqs.no_call_beyond(2, within=0.3)  # two calls out: c and d are held
    sqs.release(0)
    await sqs.wait_calls(3)
    assert sqs.emails(2) == ["c", "d"], "held emails go together after a return"
    assert flushes(registry, "bound") == 0
    sqs.release_all()
    await asyncio.gather(*tasks)
