"""The ceiling: an aiohttp handler that parses the same JSON and answers JSON, and does nothing else."""

from __future__ import annotations

import sys

import orjson
from aiohttp import web

from ingest_common.runtime import run_main


async def handle(request: web.Request) -> web.Response:
    document = orjson.loads(await request.read())
    return web.Response(
        body=orjson.dumps({"status": "success", "fields": len(document)}), content_type="application/json"
    )


async def serve(port: int) -> None:
    import asyncio  # noqa: PLC0415

    app = web.Application()
    app.router.add_post("/api/email", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=1024).start()
    await asyncio.Event().wait()


if __name__ == "__main__":
    run_main(serve(int(sys.argv[1])))
