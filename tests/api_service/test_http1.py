"""The keep-alive HTTP/1.1 pool against a real scripted server on a loopback socket (plain and TLS)."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from api_service.sqs.http1 import Http1Pool, HttpProtocolError
from ingest_common.aws import is_retryable
from tests.certificates import self_signed_certificate

LOOPBACK = "127.0.0.1"


class ScriptedServer:
    """Answers by path: /ok echoes what it received, the others misbehave the way real servers can."""

    def __init__(self) -> None:
        self.connections = 0
        self.open_now = 0
        self.peak_open = 0
        self.server: asyncio.Server | None = None
        self.port = 0
        self.writers: set[asyncio.StreamWriter] = set()

    async def start(self, ssl_context: ssl.SSLContext | None = None) -> ScriptedServer:
        self.server = await asyncio.start_server(self._serve, LOOPBACK, 0, ssl=ssl_context)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in list(self.writers):  # Server.close_clients() is Python 3.13+
            writer.close()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.add(writer)
        self.open_now += 1
        self.peak_open = max(self.peak_open, self.open_now)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                path = lines[0].split(" ")[1]
                headers = {
                    name.lower(): value for name, _, value in (line.partition(": ") for line in lines[1:] if line)
                }
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                if not await self._answer(path, headers, body, writer):
                    return
        finally:
            self.open_now -= 1
            self.writers.discard(writer)
            writer.close()

    async def _answer(self, path: str, headers: dict[str, str], body: bytes, writer: asyncio.StreamWriter) -> bool:
        """Writes the scripted answer; False closes the connection."""
        echo = orjson.dumps(
            {"path": path, "host": headers.get("host"), "x-test": headers.get("x-test"), "body": body.decode()}
        )
        if path in {"/ok", "/slow"}:
            if path == "/slow":
                await asyncio.sleep(0.1)
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(echo), echo)
            )
            return True
        if path == "/chunked":
            writer.write(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Amzn-Query-Error: Some.Code;Sender\r\n\r\n"
            )
            for part in (echo[:5], echo[5:12], echo[12:]):
                writer.write(b"%x\r\n%s\r\n" % (len(part), part))
                await writer.drain()
                await asyncio.sleep(0.01)
            writer.write(b"0\r\n\r\n")
            return True
        if path == "/close":
            writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}")
            await writer.drain()
            return False
        if path == "/answer-then-drop":  # keep-alive promised, then the server drops the idle connection
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
            await writer.drain()
            await asyncio.sleep(0.05)
            return False
        if path == "/hang":
            await asyncio.sleep(30)
            return False
        if path == "/partial":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
            await writer.drain()
            return False
        if path == "/garbage":
            writer.write(b"NOT HTTP AT ALL\r\n\r\n")
            await writer.drain()
            return True
        return False  # /reset and anything else: hang up without an answer


@pytest.fixture
async def server() -> AsyncIterator[ScriptedServer]:
    scripted = await ScriptedServer().start()
    yield scripted
    await scripted.stop()


def pool_for(server: ScriptedServer, **overrides: float) -> Http1Pool:
    settings: dict[str, float] = {"max_connections": 4, "connect_timeout": 2.0, "request_timeout": 2.0}
    settings.update(overrides)
    return Http1Pool(
        f"http://{LOOPBACK}:{server.port}/",
        max_connections=int(settings["max_connections"]),
        connect_timeout=settings["connect_timeout"],
        request_timeout=settings["request_timeout"],
        idle_timeout=settings.get("idle_timeout", 30.0),
    )


async def test_one_connection_carries_many_requests(server: ScriptedServer) -> None:
    pool = pool_for(server)
    for index in range(20):
        response = await pool.post("/ok", {"X-Test": f"n{index}", "Host": "ignored"}, b'{"i":%d}' % index)
        assert response.status == 200
        assert response.headers["content-type"] == "application/json"
        echo = orjson.loads(response.body)
        assert echo == {
            "path": "/ok",
            "host": f"{LOOPBACK}:{server.port}",
            "x-test": f"n{index}",
            "body": f'{{"i":{index}}}',
        }
    assert server.connections == 1
    await pool.close()
    assert pool.open_connections == 0


async def test_chunked_responses_are_reassembled(server: ScriptedServer) -> None:
    pool = pool_for(server)
    response = await pool.post("/chunked", {}, b"payload")
    assert orjson.loads(response.body)["body"] == "payload"
    assert response.headers["x-amzn-query-error"] == "Some.Code;Sender"
    assert (await pool.post("/ok", {}, b"")).status == 200
    assert server.connections == 1, "a complete chunked response leaves the connection reusable"
    await pool.close()


async def test_connection_close_is_honoured(server: ScriptedServer) -> None:
    pool = pool_for(server)
    assert (await pool.post("/close", {}, b"")).body == b"{}"
    assert (await pool.post("/ok", {}, b"")).status == 200
    assert server.connections == 2
    await pool.close()


async def test_a_connection_the_server_dropped_while_idle_is_not_reused(server: ScriptedServer) -> None:
    pool = pool_for(server)
    assert (await pool.post("/answer-then-drop", {}, b"")).status == 200
    await asyncio.sleep(0.2)
    assert (await pool.post("/ok", {}, b"")).status == 200
    assert server.connections == 2
    await pool.close()


async def test_idle_connections_expire(server: ScriptedServer) -> None:
    pool = pool_for(server, idle_timeout=0.1)
    await pool.post("/ok", {}, b"")
    await asyncio.sleep(0.2)
    await pool.post("/ok", {}, b"")
    assert server.connections == 2
    await pool.close()


async def test_an_unanswered_request_times_out_and_its_connection_is_dropped(server: ScriptedServer) -> None:
    pool = pool_for(server, request_timeout=0.2)
    loop = asyncio.get_running_loop()
    began = loop.time()
    with pytest.raises(TimeoutError) as caught:
        await pool.post("/hang", {}, b"")
    assert 0.15 < loop.time() - began < 1.5
    assert is_retryable(caught.value)
    assert (await pool.post("/ok", {}, b"")).status == 200
    assert server.connections == 2, "a late answer can never be read as the next request's"
    await pool.close()


@pytest.mark.parametrize("path", ["/reset", "/partial"])
async def test_a_connection_lost_before_the_whole_response_is_a_retryable_error(
    server: ScriptedServer, path: str
) -> None:
    pool = pool_for(server)
    with pytest.raises(ConnectionError) as caught:
        await pool.post(path, {}, b"")
    assert is_retryable(caught.value)
    assert (await pool.post("/ok", {}, b"")).status == 200
    await pool.close()


async def test_a_malformed_response_is_a_protocol_error(server: ScriptedServer) -> None:
    pool = pool_for(server)
    with pytest.raises(HttpProtocolError) as caught:
        await pool.post("/garbage", {}, b"")
    assert is_retryable(caught.value)
    assert (await pool.post("/ok", {}, b"")).status == 200
    assert server.connections == 2
    await pool.close()


async def test_a_refused_connection_is_an_os_error(server: ScriptedServer) -> None:
    port = server.port
    await server.stop()
    pool = Http1Pool(f"http://{LOOPBACK}:{port}/", max_connections=1, connect_timeout=1.0, request_timeout=1.0)
    with pytest.raises(ConnectionRefusedError) as caught:
        await pool.post("/ok", {}, b"")
    assert is_retryable(caught.value)
    await pool.close()
    await server.start()  # the fixture stops it again


async def test_concurrent_requests_never_open_more_than_the_limit(server: ScriptedServer) -> None:
    pool = pool_for(server, max_connections=3)
    responses = await asyncio.gather(*(pool.post("/slow", {}, b"%d" % index) for index in range(12)))
    assert sorted(orjson.loads(response.body)["body"] for response in responses) == sorted(str(i) for i in range(12))
    assert server.connections == 3
    assert server.peak_open == 3
    await pool.close()


def test_only_http_urls_are_accepted() -> None:
    with pytest.raises(ValueError, match="not an http"):
        Http1Pool("ftp://example.com/", max_connections=1, connect_timeout=1, request_timeout=1)


async def test_https_verifies_the_server_certificate(tmp_path: Path) -> None:
    cert_path, key_path = self_signed_certificate(tmp_path)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert_path, key_path)
    server = await ScriptedServer().start(server_context)
    try:
        trusting = Http1Pool(
            f"https://{LOOPBACK}:{server.port}/",
            max_connections=1,
            connect_timeout=2.0,
            request_timeout=2.0,
            ssl_context=ssl.create_default_context(cafile=str(cert_path)),
        )
        for _ in range(3):
            response = await trusting.post("/ok", {}, b"over tls")
            assert orjson.loads(response.body)["body"] == "over tls"
        assert server.connections == 1
        await trusting.close()

        default = Http1Pool(
            f"https://{LOOPBACK}:{server.port}/", max_connections=1, connect_timeout=2.0, request_timeout=2.0
        )
        with pytest.raises(ssl.SSLCertVerificationError):
            await default.post("/ok", {}, b"")
        await default.close()
    finally:
        await server.stop()
