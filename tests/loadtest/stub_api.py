"""A stand-in for the API's ``POST /api/email`` contract, served from a thread on 127.0.0.1, for locust tests.

Modes:
  ok           200 ``{"email_id"}`` (same id for the same Idempotency-Key), 401 wrong token, 400 bad payloads
  errors       like ok, but every valid e-mail gets a 500
  slow         like ok, but every answer waits ``delay_seconds``
  shed         valid e-mails get 503 with Retry-After
  rate_limited every other valid e-mail gets 429 with Retry-After (the client over its rate limit)
  lenient      200 for everything, bad requests included (the expected-error checks must catch it)
  forgetful    ignores Idempotency-Key (a new email_id every time)
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections import Counter
from typing import Any, Final, Literal

from aiohttp import web

Mode = Literal["ok", "errors", "slow", "shed", "rate_limited", "lenient", "forgetful"]
_FIELDS: Final = {"email_subject": str, "email_sender": str, "email_timestream": int, "email_content": str}


def _problem(status: int, title: str) -> web.Response:
    return web.json_response({"title": title, "status": status}, status=status, content_type="application/problem+json")


class StubApi:
    def __init__(self, token: str, mode: Mode = "ok", delay_seconds: float = 0.0) -> None:
        self.token = token
        self.mode: Mode = mode
        self.delay_seconds = delay_seconds
        self.seen: Counter[str] = Counter()
        self._ids: dict[str, str] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _handle(self, request: web.Request) -> web.Response:
        if self.delay_seconds:
            await asyncio.sleep(self.delay_seconds)
        raw = await request.read()
        if self.mode == "lenient":
            self.seen["lenient"] += 1
            return web.json_response({"status": "success", "email_id": uuid.uuid4().hex})
        try:
            document: Any = json.loads(raw)
        except ValueError:
            self.seen["malformed_json"] += 1
            return _problem(400, "malformed-json")
        if not isinstance(document, dict):
            self.seen["invalid_payload"] += 1
            return _problem(400, "invalid-payload")
        if document.get("token") != self.token:
            self.seen["unauthorized"] += 1
            return _problem(401, "unauthorized")
        data = document.get("data")
        if not isinstance(data, dict) or any(not isinstance(data.get(field), kind) for field, kind in _FIELDS.items()):
            self.seen["invalid_payload"] += 1
            return _problem(400, "invalid-payload")
        if self.mode == "errors":
            self.seen["error"] += 1
            return _problem(500, "internal-error")
        if self.mode == "shed":
            self.seen["shed"] += 1
            response = _problem(503, "service-unavailable")
            response.headers["Retry-After"] = "1"
            return response
        if self.mode == "rate_limited" and sum(self.seen.values()) % 2:
            self.seen["rate_limited"] += 1
            response = _problem(429, "too-many-requests")
            response.headers["Retry-After"] = "1"
            return response
        key = request.headers.get("Idempotency-Key")
        if key is not None and self.mode != "forgetful":
            self.seen["idempotent"] += 1
            email_id = self._ids.setdefault(key, uuid.uuid4().hex)
        else:
            self.seen["accepted"] += 1
            email_id = uuid.uuid4().hex
        return web.json_response({"status": "success", "message_id": uuid.uuid4().hex, "email_id": email_id})

    def start(self) -> None:
        ready = threading.Event()
        failure: list[BaseException] = []

        async def serve() -> None:
            app = web.Application(client_max_size=1024 * 1024)
            app.router.add_post("/api/email", self._handle)
            self._runner = web.AppRunner(app, access_log=None)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            await site.start()
            self.port = self._runner.addresses[0][1]

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(serve())
            except BaseException as error:  # reported to start()
                failure.append(error)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            if self._runner is not None:
                loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=run, name="stub-api", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the stub API did not start")
        if failure:
            raise failure[0]

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._loop = None
        self._thread = None
