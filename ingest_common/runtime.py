"""Running a service: the fastest event loop available, and a stop sequence on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import gc
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol, TypeVar

import structlog
from aiohttp import web

from ingest_common.config import ConfigError
from ingest_common.http_protocol import ProblemAppRunner, RefusalObserver
from ingest_common.logging import configure_logging
from ingest_common.tracing import TracingSettings

log = structlog.get_logger("ingest_common.runtime")


class ServiceSettings(Protocol):
    @property
    def log_level(self) -> str: ...

    @property
    def tracing(self) -> TracingSettings: ...


SettingsT = TypeVar("SettingsT", bound=ServiceSettings)


def service_main(
    service: str, load_settings: Callable[[], SettingsT], serve: Callable[[SettingsT], Coroutine[Any, Any, None]]
) -> int:
    """A service's entry point: settings (exit 2 naming every bad variable), logging, then serve until stopped."""
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"{service}: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, service.removesuffix("_service"), trace_ids=settings.tracing.enabled)
    run_main(serve(settings))
    return 0


def run_main(main: Coroutine[Any, Any, None]) -> None:
    try:
        import uvloop  # noqa: PLC0415 - optional speed-up, absent on some platforms
    except ImportError:
        asyncio.run(main)
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main)


async def serve_until_signalled(
    app: web.Application,
    *,
    host: str,
    port: int,
    shutdown_timeout: float,
    on_stop: Callable[[], Awaitable[None]],
    on_refused: RefusalObserver | None = None,
) -> None:
    """Serves `app` until SIGTERM or SIGINT, awaits `on_stop` (the service's drain), then cleans up.

    The listening socket stays open while `on_stop` runs, so readiness probes see the drain. Requests the HTTP
    parser refuses are answered as problem+json and told to `on_refused` (ingest_common.http_protocol).
    """
    runner = ProblemAppRunner(
        app, observer=on_refused, access_log=None, shutdown_timeout=shutdown_timeout, handle_signals=False
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=1024)
    await site.start()
    # Start-up leaves ~100,000 long-lived objects (modules, botocore's service models) that every full
    # collection would walk again (~30 ms each); frozen, they are never scanned. And with dozens of requests
    # in flight, the default young-generation threshold (700 allocations) collects hundreds of times a
    # second, scanning the same live request objects each time: measured, 8 % of the API's CPU. Nearly all
    # garbage here is freed by reference counting, so collecting 14x less often holds little more memory.
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    log.info("started", host=host, port=port)
    await stop.wait()
    log.info("stopping", grace_seconds=shutdown_timeout)
    try:
        await on_stop()
    finally:
        await runner.cleanup()
    log.info("stopped")
