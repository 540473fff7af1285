"""When the pollers may receive: while the queue is thin, one receive at a time, a fill time after the last short one.

SQS bills every ReceiveMessage (and each 64 KiB of what it returns), whatever it returns. With the queue thin, pollers
that each receive on their own split the few messages that arrived over several thin receives; and pollers that each
wait a fill time on their own still receive, together, once per fill time each. So the pollers share one rule:

- After a receive that returned fewer messages than it asked for (the queue is thin), the next receive, by whichever
  poller, goes `fill_seconds` after that one returned, and only one receive is out at a time while the queue stays
  thin: the messages that arrive meanwhile come back in one receive, fuller.
- A receive that returned all it asked for (the queue has more) is never held: every poller receives at once again,
  concurrently, until one comes back short.
- Until a first receive comes back full, the queue is taken as thin: an idle consumer has one long poll out.
- `fill_seconds=0` is the old rule: every poller receives as soon as it can.

The added delay: a message that becomes visible while the gate is closed waits at most `fill_seconds` plus the one
receive under way (a long poll returns as soon as it has messages). Waiting is an ordinary await: cancelling the
pollers (SIGTERM's drain) ends it at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ReceiveTurn:
    """A poller's permission for one receive; hand it back to `ReceiveFill.done`."""

    serialized: bool
    """Taken while the queue was thin: the only receive out until it is done."""


class ReceiveFill:
    """The pollers' shared gate (see the module's docstring)."""

    def __init__(self, fill_seconds: float, *, clock: Callable[[], float] | None = None) -> None:
        self._fill = fill_seconds
        self._clock = clock or time.monotonic
        # The last receive to return came back short; at the start too, so that an idle consumer has one long poll
        # out, not one per poller, until a receive comes back full.
        self._thin = True
        self._not_before = float("-inf")  # when the next thin receive may go
        self._thin_receive_out = False
        self._changed = asyncio.Event()

    @property
    def thin(self) -> bool:
        return self._thin

    async def turn(self) -> ReceiveTurn:
        """Returns when this poller may receive: at once unless the queue is thin."""
        while self._fill > 0 and self._thin:
            wait = self._not_before - self._clock()
            if not self._thin_receive_out and wait <= 0:
                self._thin_receive_out = True
                return ReceiveTurn(serialized=True)
            # Woken by a receive that returns (full: everyone goes; short: a new fill time), or when the fill ends.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), None if self._thin_receive_out else wait)
        return ReceiveTurn(serialized=False)

    def done(self, turn: ReceiveTurn, *, received: int | None, asked: int) -> None:
        """Records what a receive returned (`received=None`: it failed or was cancelled, which says nothing of the
        queue) and lets the pollers waiting on it decide again."""
        if turn.serialized:
            self._thin_receive_out = False
        if received is not None and self._fill > 0:
            # A receive is full when it brought all it asked for: fewer free slots, not a thin queue, made it small.
            self._thin = received < asked
            if self._thin:
                self._not_before = self._clock() + self._fill
        self._changed.set()
        self._changed = asyncio.Event()  # a fresh one: those woken wait on it next
