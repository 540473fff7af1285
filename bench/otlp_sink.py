"""A trace sink for the benchmark: accepts OTLP/HTTP exports (POST /v1/traces) and counts them, keeping nothing.

The tracing section measures what tracing costs the services (spans, export), not a trace store; its CPU is not
counted. Usage: python -m bench.otlp_sink PORT
"""

from __future__ import annotations

import sys

from aiohttp import web

from ingest_common.runtime import run_main

# An empty ExportTraceServiceResponse, protobuf-encoded, is zero bytes.
_EMPTY_RESPONSE = b""


async def serve(port: int) -> None:
    import asyncio  # noqa: PLC0415

    exports = 0

    async def traces(request: web.Request) -> web.Response:
        nonlocal exports
        await request.read()
        exports += 1
        return web.Response(body=_EMPTY_RESPONSE, content_type="application/x-protobuf")

    async def count(_request: web.Request) -> web.Response:
        return web.Response(text=str(exports))

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/v1/traces", traces)
    app.router.add_get("/exports", count)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await asyncio.Event().wait()


if __name__ == "__main__":
    run_main(serve(int(sys.argv[1])))
