"""API test helpers: settings for a bootstrapped stack, posting an email in-process or to a process."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import urllib.error
import urllib.request
from typing import Any

import aiohttp
import orjson
from aiohttp import web
from aiohttp.test_utils import TestClient

from api_service.config import ApiSettings
from devstack.bootstrap import Resources

Api = TestClient[web.Request, web.Application]


def api_settings_for(resources: Resources, **overrides: Any) -> ApiSettings:
    base = ApiSettings(
        region=resources.region,
        queue_url=resources.queue_url,
        token_parameter_name=resources.token_parameter,
        publish_linger_seconds=0.005,
    )
    return dataclasses.replace(base, **overrides)


async def post_email(api: Api, payload: Any, **kwargs: Any) -> tuple[int, dict[str, Any], Any]:
    response = await api.post("/api/email", json=payload, **kwargs)
    body = await response.read()
    return response.status, dict(response.headers), orjson.loads(body) if body else None


def assert_problem(status: int, headers: dict[str, Any], body: Any, expected_status: int, slug: str) -> None:
    assert status == expected_status, body
    assert headers["Content-Type"] == "application/problem+json"
    assert body["status"] == expected_status
    assert body["type"].endswith(f"/{slug}")
    assert body["request_id"] == headers["X-Request-ID"]


def post(url: str, payload: dict[str, object], timeout: float = 30) -> tuple[int, dict[str, object] | None]:
    """POSTs JSON to a running API process; status 0 when the connection was refused."""
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")
    except OSError:
        return 0, None  # refused: the listener is closed, nothing was accepted


async def post_many(
    api_url: str, payloads: list[dict[str, Any]], headers: list[dict[str, str]], *, connections: int = 32
) -> list[tuple[int, dict[str, Any]]]:
    """POSTs every payload (with its headers) to a running API at once, over up to `connections` connections."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections)) as session:

        async def one(payload: dict[str, Any], extra: dict[str, str]) -> tuple[int, dict[str, Any]]:
            async with session.post(f"{api_url}/api/email", json=payload, headers=extra) as response:
                return response.status, await response.json(content_type=None)

        return await asyncio.gather(*(one(p, h) for p, h in zip(payloads, headers, strict=True)))
