"""The poison schedule: delays after each receive that keep a poison message out of the DLQ for the window."""

from __future__ import annotations

import pytest

from consumer_service.consumer import MAX_VISIBILITY_SECONDS, PoisonSchedule


@pytest.mark.parametrize("max_receive_count", [1, 2, 3, 4, 5, 6, 10, 20, 50, 100, 1000])
@pytest.mark.parametrize("window", [1, 7, 60, 900, 1800, 3600, 21_600, MAX_VISIBILITY_SECONDS])
def test_the_delays_before_the_last_delivery_cover_the_window(max_receive_count: int, window: int) -> None:
    schedule = PoisonSchedule(window_seconds=window, max_receive_count=max_receive_count)
    # SQS delivers max_receive_count times; the delays after the first max_receive_count - 1 deliveries alone
    # must reach the window (with one delivery, its own delay does).
    covering = range(1, max(1, max_receive_count - 1) + 1)
    delays = [schedule.delay_seconds(receive) for receive in range(1, max_receive_count + 3)]
    assert sum(schedule.delay_seconds(receive) for receive in covering) >= window
    assert all(1 <= delay <= MAX_VISIBILITY_SECONDS for delay in delays)
    assert delays == sorted(delays), "the delays never shrink"
    # Not wildly more than asked: each rounding adds under a second.
    assert sum(schedule.delay_seconds(receive) for receive in covering) < window + len(covering)


def test_the_default_window_with_the_default_redrive_policy() -> None:
    schedule = PoisonSchedule(window_seconds=1800, max_receive_count=5)
    assert [schedule.delay_seconds(receive) for receive in range(1, 7)] == [120, 240, 480, 960, 960, 960]


def test_the_window_is_capped_at_sqs_maximum_visibility() -> None:
    schedule = PoisonSchedule(window_seconds=10 * MAX_VISIBILITY_SECONDS, max_receive_count=1)
    assert schedule.delay_seconds(1) == MAX_VISIBILITY_SECONDS


def test_odd_receive_counts_are_clamped() -> None:
    schedule = PoisonSchedule(window_seconds=60, max_receive_count=3)
    assert schedule.delay_seconds(0) == schedule.delay_seconds(1) == 20
    assert schedule.delay_seconds(10_000) == 40
