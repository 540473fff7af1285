"""`python -m api_service`: serve until SIGTERM or SIGINT, then drain and exit 0."""

from __future__ import annotations

import sys
from functools import partial

from api_service.app import begin_drain, count_refused, create_app
from api_service.config import ApiSettings
from ingest_common.runtime import serve_until_signalled, service_main


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
        on_refused=partial(count_refused, app),
    )


def main() -> int:
    return service_main("api_service", ApiSettings.from_env, serve)


if __name__ == "__main__":
    sys.exit(main())
