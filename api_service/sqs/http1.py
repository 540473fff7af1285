"""Keep-alive HTTP/1.1 connections to one origin, for small JSON request/response exchanges (AWS JSON APIs).

Why not aiohttp's client here: the API sends a few hundred `SendMessageBatch` calls a second, each a small
POST answered by a small JSON document. Measured against ElasticMQ at that rate, aiohttp's client spent
~520 us of CPU per call (its request and response objects, connector, timers and tracing hooks); this
pool spends ~190 us, and at ~9 emails per call that is a tenth of the API's CPU per email. The response
is parsed by httptools (llhttp, the parser Node.js uses), so framing (Content-Length, chunked,
keep-alive) is not ours to get wrong. What this does not do, on purpose: redirects, proxies, cookies,
compression, request streaming; none is used by the AWS JSON protocol.

Every failure is an `OSError` (connection refused/reset, `HttpProtocolError` for a malformed response) or
a `TimeoutError`, so callers can classify them as transport errors; the connection involved is dropped.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, cast
from urllib.parse import urlsplit

import httptools

_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


class HttpProtocolError(ConnectionError):
    """The server's bytes were not a valid HTTP/1.1 response (or came when no request was waiting)."""


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    headers: Mapping[str, str]  # names in lower case
    body: bytes


class _Connection(asyncio.Protocol):
    """One connection; one request at a time. httptools calls the on_* methods while parsing."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[HttpResponse] | None = None
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self.closed = False
        self.keep_alive = False
        self.idle_since = 0.0

    # -- asyncio.Protocol -------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass asyncio's

    def data_received(self, data: bytes) -> None:
        if self._waiter is None:
            self._fail(HttpProtocolError("the server sent data while no request was waiting"))
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(HttpProtocolError(f"malformed HTTP response: {exc}"))

    def eof_received(self) -> bool:
        self._fail(ConnectionResetError("the server closed the connection before answering"))
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(exc or ConnectionResetError("the connection closed before the response was complete"))

    # -- httptools callbacks ----------------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        waiter, self._waiter = self._waiter, None
        self.keep_alive = self._parser.should_keep_alive()
        response = HttpResponse(self._parser.get_status_code(), self._headers, b"".join(self._body))
        self._headers, self._body = {}, []
        if waiter is not None and not waiter.done():
            waiter.set_result(response)

    # -- requests ---------------------------------------------------------------------------------

    def send(self, request: bytes, waiter: asyncio.Future[HttpResponse]) -> None:
        assert self.transport is not None
        self._waiter = waiter
        self.keep_alive = False
        self.transport.write(request)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def _fail(self, exc: BaseException) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        self.close()


class Http1Pool:
    """At most `max_connections` keep-alive connections to the origin of `url`, each reused for many requests."""

    def __init__(
        self,
        url: str,
        *,
        max_connections: int,
        connect_timeout: float,
        request_timeout: float,
        idle_timeout: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self._host = parts.hostname
        self._port = parts.port or _DEFAULT_PORTS[parts.scheme]
        self._host_header = parts.netloc.rsplit("@", 1)[-1]
        self._ssl = (ssl_context or ssl.create_default_context()) if parts.scheme == "https" else None
        self._connect_timeout = connect_timeout
        self._request_timeout = request_timeout
        self._idle_timeout = idle_timeout
        self._slots = asyncio.Semaphore(max_connections)
        self._idle: deque[_Connection] = deque()
        self._open: set[_Connection] = set()

    @property
    def host_header(self) -> str:
        return self._host_header

    @property
    def open_connections(self) -> int:
        return sum(1 for connection in self._open if not connection.closed)

    async def post(self, path: str, headers: Mapping[str, str], body: bytes) -> HttpResponse:
        head = [f"POST {path} HTTP/1.1\r\nHost: {self._host_header}\r\nContent-Length: {len(body)}\r\n"]
        head += [f"{name}: {value}\r\n" for name, value in headers.items() if name.lower() != "host"]
        head.append("\r\n")
        request = "".join(head).encode("latin-1") + body
        async with self._slots:
            connection = await self._acquire()
            waiter: asyncio.Future[HttpResponse] = asyncio.get_running_loop().create_future()
            try:
                async with asyncio.timeout(self._request_timeout):
                    connection.send(request, waiter)
                    response = await waiter
            except BaseException:
                connection.close()  # a late or partial answer must never be read as the next request's
                self._open.discard(connection)
                raise
            if connection.keep_alive and not connection.closed:
                connection.idle_since = time.monotonic()
                self._idle.append(connection)
            else:
                connection.close()
                self._open.discard(connection)
            return response

    async def _acquire(self) -> _Connection:
        now = time.monotonic()
        while self._idle and now - self._idle[0].idle_since >= self._idle_timeout:
            expired = self._idle.popleft()
            expired.close()
            self._open.discard(expired)
        while self._idle:
            connection = self._idle.pop()  # the most recently used is the least likely to have been closed
            if not connection.closed and now - connection.idle_since < self._idle_timeout:
                return connection
            connection.close()
            self._open.discard(connection)
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(self._connect_timeout):
            _, connection = await loop.create_connection(
                _Connection,
                self._host,
                self._port,
                ssl=self._ssl,
                server_hostname=self._host if self._ssl is not None else None,
            )
        self._open.add(connection)
        return connection

    async def close(self) -> None:
        for connection in list(self._open):
            connection.close()
        self._open.clear()
        self._idle.clear()
        await asyncio.sleep(0)  # let the transports finish closing
