"""`python -m api_service`: serve until SIGTERM or SIGINT, then drain and exit 0."""

from __future__ import annotations

import sys

from api_service.app import begin_drain, create_app
from api_service.config import ApiSettings
from ingest_common.config import ConfigError
from ingest_common.logging import configure_logging
from ingest_common.runtime import run_main, serve_until_signalled


async def serve(settings: ApiSettings) -> None:
    app = create_app(settings)

    async def drain() -> None:
        # New emails get 503 from here on; queued ones are flushed at once. aiohttp then stops
        # listening and waits (up to the grace period) for every in-flight request to be answered.
        begin_drain(app)

    await serve_until_signalled(
        app,
        host=settings.host,
        port=settings.port,
        shutdown_timeout=settings.shutdown_grace_seconds,
        on_stop=drain,
    )


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
