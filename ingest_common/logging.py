"""structlog configured for one JSON object per line on stdout, written once per event-loop iteration."""

from __future__ import annotations

import asyncio
import atexit
import logging
import sys
import threading
import time
from collections.abc import Callable, MutableMapping
from typing import Any, BinaryIO, Final

import orjson
import structlog

from ingest_common.tracing import current_ids

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

    def __init__(self, stream: BinaryIO, fields: CommonFields | None = None) -> None:
        self.fields = fields  # what configure_logging's processors add, for lines rendered without them
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

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock  # injected by tests, to cross a second without waiting for one
        self._second = -1
        self._prefix = ""

    def now(self) -> str:
        moment = self._clock()
        second = int(moment)
        if second != self._second:
            self._second, self._prefix = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._prefix}.{int((moment - second) * 1_000_000):06d}Z"


class CommonFields:
    """The fields every line carries (service, level, ts): a structlog processor, and used by AccessLog.

    With `trace_ids` (tracing is on), a line logged while a sampled span is current also carries its `trace_id` and
    `span_id`, so a log line leads to its trace and back. Off, the current span is not even looked up.
    """

    def __init__(self, service: str, *, trace_ids: bool = False) -> None:
        self.service = service
        self.trace_ids = trace_ids
        self._timestamps = UtcTimestamps()

    def add(self, event_dict: MutableMapping[str, Any], level: str) -> MutableMapping[str, Any]:
        event_dict["service"] = self.service
        event_dict["level"] = level
        event_dict["ts"] = self._timestamps.now()
        if self.trace_ids:
            ids = current_ids()
            if ids is not None:
                event_dict["trace_id"], event_dict["span_id"] = ids
        return event_dict

    def __call__(self, _logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        return self.add(event_dict, _LEVEL_NAMES.get(method, method))


class AccessLog:
    """The one line per HTTP request, with the same fields and format as every other line.

    It runs for every request, and structlog's processor chain costs several times the line itself, so
    when the output is ours (configure_logging ran) the line is rendered straight into it. Otherwise (tests,
    other configurations) it goes through structlog like any other line.
    """

    def __init__(self, name: str) -> None:
        self._logger = structlog.get_logger(name)
        self._enabled = self._logger.is_enabled_for(logging.INFO)
        output = structlog.get_config()["logger_factory"]()
        self._direct = (output, output.fields) if isinstance(output, LineBuffer) and output.fields else None

    def request(self, **fields: object) -> None:
        if not self._enabled:
            return
        if self._direct is None:
            self._logger.info("request", **fields)
            return
        output, common = self._direct
        fields["event"] = "request"
        output.msg(orjson.dumps(common.add(fields, "info")))


def configure_logging(
    level: str, service: str, stream: BinaryIO | None = None, *, trace_ids: bool = False
) -> LineBuffer:
    """Process-wide by nature (log output is); called once from each service's entry point."""
    numeric_level = logging.getLevelNamesMapping()[level.upper()]
    fields = CommonFields(service, trace_ids=trace_ids)
    output = LineBuffer(stream or sys.stdout.buffer, fields)
    atexit.register(output.flush)
    structlog.configure(
        processors=[
            fields,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(serializer=orjson.dumps),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        logger_factory=lambda *_names: output,
        cache_logger_on_first_use=True,
    )
    # botocore and aiohttp log through the standard library: the same JSON lines, quiet unless asked for debug.
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(StdlibLines(output, fields))
    root.setLevel(max(numeric_level, logging.WARNING))
    return output


class StdlibLines(logging.Handler):
    """Standard-library records (botocore, aiohttp, asyncio) as our JSON lines, with the logger's name.

    An exception is written as its class only, never its text or traceback: the libraries' exceptions quote what
    they were given (aiohttp's parser errors quote the raw request line or header, which can hold a token).
    """

    def __init__(self, output: LineBuffer, fields: CommonFields) -> None:
        super().__init__()
        self._output = output
        self._fields = fields

    def emit(self, record: logging.LogRecord) -> None:
        try:
            event: dict[str, Any] = {"event": record.getMessage(), "logger": record.name}
            if record.exc_info and record.exc_info[0] is not None:
                event["error"] = record.exc_info[0].__name__
            self._output.msg(orjson.dumps(self._fields.add(event, record.levelname.lower())))
        except Exception:
            self.handleError(record)
