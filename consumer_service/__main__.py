"""`python -m consumer_service`: drain SQS into S3 until SIGTERM, then finish in-flight work and exit 0."""

from __future__ import annotations

import sys

from consumer_service.app import create_app
from consumer_service.config import ConsumerSettings
from consumer_service.keys import CONSUMER
from ingest_common.runtime import serve_until_signalled, service_main


async def serve(settings: ConsumerSettings) -> None:
    app = create_app(settings)

    async def drain() -> None:
        consumer = app.get(CONSUMER)
        if consumer is not None:
            await consumer.drain(settings.shutdown_grace_seconds)

    await serve_until_signalled(app, host=settings.host, port=settings.port, shutdown_timeout=5.0, on_stop=drain)


def main() -> int:
    return service_main("consumer_service", ConsumerSettings.from_env, serve)


if __name__ == "__main__":
    sys.exit(main())
