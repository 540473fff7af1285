"""Liveness and readiness of the consumer."""

from __future__ import annotations

import orjson
from aiohttp import web

from consumer_service.keys import CONSUMER


def _json(document: object, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(document), status=status, content_type="application/json")


async def liveness(_request: web.Request) -> web.Response:
    return _json({"status": "ok"})


async def readiness(request: web.Request) -> web.Response:
    consumer = request.app.get(CONSUMER)
    if consumer is None or not consumer.running:
        state = "draining" if consumer is not None and consumer.draining else "not_running"
        return _json({"status": "unavailable", "checks": [state]}, status=503)
    return _json({"status": "ready"})
