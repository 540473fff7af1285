"""Liveness, readiness and the documents the API serves about itself."""

from __future__ import annotations

import orjson
from aiohttp import web

from api_service.keys import LIFECYCLE, OPENAPI_DOCUMENT, PUBLISHER, TOKEN_CACHE


def _json(document: object, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(document), status=status, content_type="application/json")


async def liveness(_request: web.Request) -> web.Response:
    return _json({"status": "ok"})


async def readiness(request: web.Request) -> web.Response:
    """Ready when a usable token is held and the publisher runs.

    An SQS outage does not fail readiness: it hits every pod at once, and ejecting them all would turn
    clear 503s with Retry-After into connection errors. It shows in metrics and alerts instead.
    """
    app = request.app
    problems: list[str] = []
    if app[LIFECYCLE].draining:
        problems.append("draining")
    if not app[TOKEN_CACHE].usable():
        problems.append("token_unavailable")
    if not app[PUBLISHER].running:
        problems.append("publisher_stopped")
    if problems:
        return _json({"status": "unavailable", "checks": problems}, status=503)
    return _json({"status": "ready"})


async def openapi(request: web.Request) -> web.Response:
    return web.Response(body=request.app[OPENAPI_DOCUMENT], content_type="application/json")
