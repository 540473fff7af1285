"""The pollers' shared receive fill (RECEIVE_FILL_SECONDS): thin receives one at a time, a fill time apart; full ones
never held; the drain never waits on it. The rule alone, then in the consumer on an in-process fake queue."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from consumer_service.app import create_app
from consumer_service.config import ConsumerSettings
from consumer_service.keys import CONSUMER
from consumer_service.receive_fill import ReceiveFill
from tests.support.consumer import envelope, wait_for
from tests.support.fakes import FakeQueue, FakeStore

ClientFactory = Callable[..., Awaitable[TestClient[web.Request, web.Application]]]
FILL = 0.3
SETTINGS = ConsumerSettings(
    region="us-east-1", queue_url="https://sqs.us-east-1.amazonaws.com/000000000000/emails", bucket="emails"
)


def _now() -> float:
    return asyncio.get_running_loop().time()


async def _started(tasks: list[asyncio.Task[Any]]) -> list[asyncio.Task[Any]]:
    await asyncio.sleep(0.02)  # the tasks run up to their first wait
    return tasks


async def test_after_a_short_receive_the_next_goes_a_fill_time_later_and_alone() -> None:
    fill = ReceiveFill(FILL)
    first = await fill.turn()  # a fresh consumer takes the queue as thin: one receive out, at once
    assert first.serialized
    waiting = await _started([asyncio.create_task(fill.turn()) for _ in range(3)])
    assert not any(task.done() for task in waiting), "one receive at a time while the queue is thin"
    returned = _now()
    fill.done(first, received=3, asked=10)
    done, pending = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
    assert _now() - returned >= FILL * 0.95, "the next receive waits the fill time"
    assert len(done) == 1 and len(pending) == 2, "and only one of the pollers goes"
    second = done.pop().result()
    assert second.serialized
    await asyncio.sleep(FILL * 1.5)
    assert not any(task.done() for task in pending), "no other receive while that one is out"
    fill.done(second, received=10, asked=10)  # full: the queue has more
    turns = await asyncio.wait_for(asyncio.gather(*pending), 0.1)
    assert [turn.serialized for turn in turns] == [False, False], "after a full receive every poller goes at once"


async def test_a_full_receive_is_never_held() -> None:
    fill = ReceiveFill(FILL)
    fill.done(await fill.turn(), received=10, asked=10)
    began = _now()
    turns = await asyncio.gather(*(fill.turn() for _ in range(4)))
    assert _now() - began < 0.05
    assert not any(turn.serialized for turn in turns), "concurrent receives while the queue has more"
    assert not fill.thin


async def test_a_receive_that_brought_all_the_free_slots_allowed_is_full() -> None:
    fill = ReceiveFill(FILL)
    fill.done(await fill.turn(), received=4, asked=4)  # only 4 slots were free: the queue was not thin
    assert not fill.thin
    began = _now()
    await asyncio.wait_for(fill.turn(), 0.05)
    assert _now() - began < 0.05


async def test_a_short_receive_among_concurrent_ones_holds_the_next_and_a_full_one_lifts_it() -> None:
    fill = ReceiveFill(FILL)
    fill.done(await fill.turn(), received=10, asked=10)
    one, two = await fill.turn(), await fill.turn()
    fill.done(one, received=2, asked=10)
    assert fill.thin
    held = await _started([asyncio.create_task(fill.turn())])
    assert not held[0].done()
    fill.done(two, received=10, asked=10)  # a receive still out came back full: the queue has more after all
    turn = await asyncio.wait_for(held[0], 0.05)
    assert not turn.serialized


async def test_a_failed_receive_frees_the_turn_and_says_nothing_of_the_queue() -> None:
    fill = ReceiveFill(FILL)
    first = await fill.turn()
    fill.done(first, received=None, asked=10)
    assert fill.thin
    second = await asyncio.wait_for(fill.turn(), 0.05)  # no fill time: nothing came back short
    assert second.serialized


async def test_no_fill_time_is_the_old_rule() -> None:
    fill = ReceiveFill(0)
    turns = [await fill.turn() for _ in range(4)]
    for turn in turns:
        fill.done(turn, received=1, asked=10)
    began = _now()
    await asyncio.wait_for(asyncio.gather(*(fill.turn() for _ in range(4))), 0.05)
    assert _now() - began < 0.05


async def test_a_poller_waiting_on_the_fill_is_cancelled_at_once() -> None:
    fill = ReceiveFill(60)
    fill.done(await fill.turn(), received=1, asked=10)
    waiting = await _started([asyncio.create_task(fill.turn())])
    waiting[0].cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(waiting[0], 0.05)


def _message(number: int) -> dict[str, Any]:
    return {
        "MessageId": f"m{number}",
        "ReceiptHandle": f"r{number}",
        "Body": envelope(number).to_body(),
        "Attributes": {},
    }


async def test_the_consumers_pollers_share_the_fill(aiohttp_client: ClientFactory) -> None:
    """Four pollers on a thin queue: one receive per fill time, not four; a backlog is received concurrently."""
    queue = FakeQueue([_message(number) for number in range(3)])
    settings = dataclasses.replace(SETTINGS, pollers=4, receive_fill_seconds=1.0)
    await aiohttp_client(create_app(settings, queue=queue, store=FakeStore()))

    async def deleted() -> bool:
        return len(queue.deleted) == 3

    await wait_for(deleted, timeout=10, what="three deletes")
    assert queue.receives == 1, "a fresh consumer's pollers do not all receive at once"
    await asyncio.sleep(0.5)
    assert queue.receives == 1, "no receive within the fill time, by any poller"
    queue.redeliver([_message(number) for number in range(3, 40)])

    async def drained() -> bool:
        return len(queue.deleted) == 40

    await wait_for(drained, timeout=10, what="the backlog")
    # The fill's receive brought 10: the rest goes without waiting (1 + 4 full + 1 short, give or take an empty one).
    assert queue.receives <= 8


async def test_the_drain_does_not_wait_on_the_fill(aiohttp_client: ClientFactory) -> None:
    queue = FakeQueue([_message(0)])
    settings = dataclasses.replace(SETTINGS, pollers=4, receive_fill_seconds=60)
    client = await aiohttp_client(create_app(settings, queue=queue, store=FakeStore()))

    async def deleted() -> bool:
        return queue.deleted == ["r0"]

    await wait_for(deleted, timeout=10, what="the delete")
    began = _now()
    await client.app[CONSUMER].drain(5)
    assert _now() - began < 1.5, "the pollers held by the fill are cancelled, not waited for"
