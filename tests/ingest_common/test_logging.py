"""The log output: JSON lines, gathered per event-loop iteration, never lost at exit."""

from __future__ import annotations

import asyncio
import io
import logging
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import orjson
import pytest
import structlog

from ingest_common.logging import AccessLog, LineBuffer, UtcTimestamps, configure_logging


class CountingStream(io.BytesIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.writes += 1
        return super().write(data)


def test_lines_logged_in_one_loop_iteration_are_written_together_and_in_order() -> None:
    stream = CountingStream()
    buffer = LineBuffer(stream)

    async def burst() -> None:
        for index in range(5):
            buffer.msg(f"line {index}".encode())
        assert stream.writes == 0, "nothing written before the iteration ends"
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert stream.writes == 1
        buffer.msg(b"next iteration")
        await asyncio.sleep(0)
        await asyncio.sleep(0)

    asyncio.run(burst())
    assert stream.getvalue().decode().splitlines() == [*(f"line {index}" for index in range(5)), "next iteration"]
    assert stream.writes == 2


def test_a_flush_left_behind_by_a_stopped_loop_does_not_hold_back_the_next_loop() -> None:
    stream = CountingStream()
    buffer = LineBuffer(stream)
    first = asyncio.new_event_loop()

    def log_and_stop() -> None:
        buffer.msg(b"from the first loop")
        first.stop()  # its flush callback never runs

    first.call_soon(log_and_stop)
    first.run_forever()

    async def later() -> None:
        buffer.msg(b"from the second loop")
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert stream.getvalue() == b"from the first loop\nfrom the second loop\n"

    asyncio.run(later())
    first.close()


def test_without_a_running_loop_each_line_is_written_at_once() -> None:
    stream = CountingStream()
    buffer = LineBuffer(stream)
    buffer.info(b"starting")
    assert stream.getvalue() == b"starting\n"


def test_a_large_burst_is_written_before_the_iteration_ends() -> None:
    stream = CountingStream()
    buffer = LineBuffer(stream)

    async def flood() -> None:
        for _ in range(300):
            buffer.msg(b"x" * 1024)
        assert stream.writes >= 1, "256 KiB are not held back for the end of the iteration"

    asyncio.run(flood())
    buffer.flush()
    assert stream.getvalue().count(b"\n") == 300


def test_configured_lines_are_json_with_service_level_and_timestamp() -> None:
    stream = io.BytesIO()
    configure_logging("info", "api", stream=stream)
    try:
        structlog.get_logger("test").info("request", status=200)
        structlog.get_logger("test").debug("hidden")
    finally:
        structlog.reset_defaults()
    [line] = stream.getvalue().splitlines()
    record = orjson.loads(line)
    assert record["event"] == "request"
    assert record["status"] == 200
    assert record["service"] == "api"
    assert record["level"] == "info"
    assert record["ts"].endswith("Z")


def test_standard_library_records_are_json_lines_with_the_exception_class_only() -> None:
    """aiohttp's and botocore's records: the same JSON lines; an exception's text (which can quote a request's
    header, a token included) is never written, only its class."""
    stream = io.BytesIO()
    configure_logging("info", "api", stream=stream)
    root = logging.getLogger()
    try:
        try:
            raise ValueError("Invalid HTTP header: 'Authorization: Bearer SECRET-TOKEN\\r'")
        except ValueError:
            logging.getLogger("aiohttp.server").exception("Error handling request from %s", "127.0.0.1")
        logging.getLogger("botocore").info("below the floor: not written")
    finally:
        structlog.reset_defaults()
        for handler in list(root.handlers):
            root.removeHandler(handler)
    [line] = stream.getvalue().splitlines()
    assert b"SECRET-TOKEN" not in line
    record = orjson.loads(line)
    assert record["event"] == "Error handling request from 127.0.0.1"
    assert record["logger"] == "aiohttp.server"
    assert record["error"] == "ValueError"
    assert record["level"] == "error" and record["service"] == "api"


@pytest.mark.integration
def test_lines_still_buffered_when_the_process_exits_are_written() -> None:
    program = (
        "import asyncio, structlog\n"
        "from ingest_common.logging import configure_logging\n"
        "configure_logging('info', 'api')\n"
        "loop = asyncio.new_event_loop()\n"
        "def last():\n"
        "    structlog.get_logger().info('last_words')\n"
        "    loop.stop()\n"  # the loop ends with this iteration: the flush it scheduled never runs
        "loop.call_soon(last)\n"
        "loop.run_forever()\n"
        "loop.close()\n"
    )
    completed = subprocess.run([sys.executable, "-c", program], capture_output=True, check=True, timeout=60)
    assert b'"event":"last_words"' in completed.stdout


def test_the_access_log_line_has_the_same_shape_as_any_other_line() -> None:
    stream = io.BytesIO()
    configure_logging("info", "api", stream=stream)
    try:
        AccessLog("test.access").request(method="POST", path="/api/email", status=200, request_id="r1")
        structlog.get_logger("test").info("request", method="POST", path="/api/email", status=200, request_id="r1")
    finally:
        structlog.reset_defaults()
    fast, through_structlog = (orjson.loads(line) for line in stream.getvalue().splitlines())
    assert fast.keys() == through_structlog.keys()
    assert list(fast) == list(through_structlog), "same key order too"
    assert {key: value for key, value in fast.items() if key != "ts"} == {
        key: value for key, value in through_structlog.items() if key != "ts"
    }
    for record in (fast, through_structlog):
        parsed = datetime.fromisoformat(record["ts"].replace("Z", "+00:00"))
        assert abs((datetime.now(UTC) - parsed).total_seconds()) < 5


def test_the_access_log_follows_the_level() -> None:
    stream = io.BytesIO()
    configure_logging("warning", "api", stream=stream)
    try:
        AccessLog("test.access").request(method="GET", path="/healthz", status=200)
        structlog.get_logger("test").warning("kept")
    finally:
        structlog.reset_defaults()
    assert [orjson.loads(line)["event"] for line in stream.getvalue().splitlines()] == ["kept"]


def test_without_our_configuration_the_access_log_goes_through_structlog(capsys: pytest.CaptureFixture[str]) -> None:
    structlog.reset_defaults()
    AccessLog("test.access").request(method="GET", path="/healthz", status=204)
    assert "request" in capsys.readouterr().out


def test_timestamps_are_utc_microseconds_and_follow_the_clock() -> None:
    stamps = UtcTimestamps()
    before = datetime.now(UTC)
    first = stamps.now()
    after = datetime.now(UTC)
    assert len(first) == len("2026-11-22T18:51:11.123456Z")
    assert before - timedelta(milliseconds=1) <= datetime.fromisoformat(first.replace("Z", "+00:00")) <= after


def test_timestamps_redo_the_cached_second_when_the_clock_crosses_one() -> None:
    clock = iter([1_693_561_100.75, 1_693_561_101.25, 1_693_561_101.5])  # exact in binary
    stamps = UtcTimestamps(clock=lambda: next(clock))
    assert stamps.now() == "2023-09-01T09:38:20.750000Z"
    assert stamps.now() == "2023-09-01T09:38:21.250000Z"  # a new second: the cached date and time part is redone
    assert stamps.now() == "2023-09-01T09:38:21.500000Z"
