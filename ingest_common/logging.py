"""structlog configured for one JSON object per line on stdout, written once per event-loop iteration."""

from __future__ import annotations

import asyncio
import atexit
import logging
import sys
import threading
import time
from collections.abc import MutableMapping
from typing import Any, BinaryIO, Final

import orjson
import structlog

# Above this much buffered output a line is written at once instead of at the end of the iteration.
_MAX_BUFFERED_BYTES: Final = 256 * 1024
_LEVEL_NAMES: Final = {"warn": "warning", "exception": "error"}  # as structlog's add_log_level names them


class LineBuffer:
    """The logger structlog writes rendered lines to.

    Lines logged on an event loop are gathered and written with one `write()` at the end of the loop
    iteration: with an access log line per request, a write (and flush) per line cost more CPU than
    the rest of the logging. Lines still reach the stream within one iteration (well under a
    millisecond), in order, and everything left is written at exit; only a SIGKILL can lose the
    last iteration's lines. Lines logged where no loop runs (start-up, threads) are written at once.
    """

    def __init__(self, stream: BinaryIO, *, service: str = "", info_enabled: bool = True) -> None:
        self.service = service
        self.info_enabled = info_enabled
        self._stream = stream
        self._lines: list[bytes] = []
        self._size = 0
        self._flush_loop: asyncio.AbstractEventLoop | None = None  # where a flush is scheduled
        self._lock = threading.Lock()

    def msg(self, message: bytes) -> None:
        with self._lock:
            self._lines.append(message)
            self._size += len(message)
            if self._size >= _MAX_BUFFERED_BYTES:
                self._write_locked()
                return
            flush_loop = self._flush_loop
            if flush_loop is not None and flush_loop.is_running():
                return  # a flush is already scheduled for the end of this iteration
            try:
                loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
            except RuntimeError:
                loop = None
            if loop is None:
                self._write_locked()
                return
            loop.call_soon(self.flush)
            self._flush_loop = loop

    log = debug = info = warn = warning = err = error = critical = exception = fatal = msg

    def flush(self) -> None:
        with self._lock:
            self._flush_loop = None
            self._write_locked()

    def _write_locked(self) -> None:
        if not self._lines:
            return
        lines, self._lines, self._size = self._lines, [], 0
        self._stream.write(b"\n".join(lines) + b"\n")
        self._stream.flush()


class UtcTimestamps:
    """`2026-11-22T18:51:11.123456Z` for now; the date and time part is formatted once per second."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def now(self) -> str:
        moment = time.time()
        second = int(moment)
        if second != self._second:
            self._second, self._prefix = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._prefix}.{int((moment - second) * 1_000_000):06d}Z"


def _common_fields(service: str) -> structlog.types.Processor:
    timestamps = UtcTimestamps()

    def add_fields(_logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        event_dict["service"] = service
        event_dict["level"] = _LEVEL_NAMES.get(method, method)
        event_dict["ts"] = timestamps.now()
        return event_dict

    return add_fields


class AccessLog:
    """The one line per HTTP request, with the same fields and format as every other line.

    It runs for every request, and structlog's processor chain costs several times the line itself, so
    when the output is ours (configure_logging ran) the line is rendered straight into it. Otherwise (tests,
    other configurations) it goes through structlog like any other line.
    """

    def __init__(self, name: str) -> None:
        self._logger = structlog.get_logger(name)
        output = structlog.get_config()["logger_factory"]()
        self._output = output if isinstance(output, LineBuffer) and output.info_enabled else None
        self._enabled = self._output is not None or self._logger.is_enabled_for(logging.INFO)
        self._timestamps = UtcTimestamps()

    def request(self, **fields: object) -> None:
        if not self._enabled:
            return
        output = self._output
        if output is None:
            self._logger.info("request", **fields)
            return
        fields["event"] = "request"
        fields["service"] = output.service
        fields["level"] = "info"
        fields["ts"] = self._timestamps.now()
        output.msg(orjson.dumps(fields))


def configure_logging(level: str, service: str, stream: BinaryIO | None = None) -> LineBuffer:
    """Process-wide by nature (log output is); called once from each service's entry point."""
    numeric_level = logging.getLevelNamesMapping()[level.upper()]
    output = LineBuffer(stream or sys.stdout.buffer, service=service, info_enabled=numeric_level <= logging.INFO)
    atexit.register(output.flush)
    structlog.configure(
        processors=[
            _common_fields(service),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(serializer=orjson.dumps),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        logger_factory=lambda *_names: output,
        cache_logger_on_first_use=True,
    )
    # botocore and aiohttp log through the standard library; keep them quiet unless asked for debug.
    logging.basicConfig(level=max(numeric_level, logging.WARNING), stream=sys.stderr, format="%(message)s")
    return output
