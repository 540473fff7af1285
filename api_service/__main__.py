"""`python -m api_service`: serve until SIGTERM or SIGINT, then drain and exit 0."""

from __future__ import annotations

import asyncio
import signal
import sys

import structlog
from aiohttp import web

from api_service.app import begin_drain, create_app
from api_service.config import ApiSettings
from ingest_common.config import ConfigError
from ingest_common.logging import configure_logging
from ingest_common.runtime import run_main

log = structlog.get_logger("api_service")


async def serve(settings: ApiSettings) -> None:
    app = create_app(settings)
    # shutdown_timeout bounds how long in-flight requests may take to be answered after SIGTERM.
    runner = web.AppRunner(
        app, access_log=None, shutdown_timeout=settings.shutdown_grace_seconds, handle_signals=False
    )
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port, backlog=1024)
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    log.info("api_started", host=settings.host, port=settings.port)
    await stop.wait()
    log.info("api_draining", grace_seconds=settings.shutdown_grace_seconds)
    begin_drain(app)
    await runner.cleanup()
    log.info("api_stopped")


def main() -> int:
    try:
        settings = ApiSettings.from_env()
    except ConfigError as exc:
        print(f"api_service: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, "api")
    run_main(serve(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
