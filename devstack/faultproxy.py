"""A fault-injecting TCP proxy on 127.0.0.1, for reliability tests and the soak.

Put it between a service and one AWS endpoint (for example the API's ``AWS_ENDPOINT_URL_SQS``) and switch its
mode while the service runs::

    with FaultProxy("127.0.0.1", moto_port) as proxy:
        env = {"AWS_ENDPOINT_URL_SQS": proxy.endpoint_url}
        ...
        proxy.set_mode(Mode.REFUSE)              # the endpoint is down
        proxy.set_mode(Mode.LATENCY, latency=0.3)  # slow
        proxy.set_mode(Mode.BLACKHOLE)           # accepts, never answers
        proxy.set_mode(Mode.PASS)                # recovered

Modes:

``pass``
    Bytes flow both ways unchanged.
``refuse``
    Every open connection is reset (RST) at once, and every new one is reset as soon as it is accepted: what a
    client sees when the endpoint's host is down or a load balancer drops it.
``latency``
    Bytes flow, each chunk delayed by ``latency`` seconds in each direction (a slow or distant endpoint).
``blackhole``
    Connections (new and open) are kept but nothing is forwarded either way: the client waits for its read
    timeout. Leaving this mode resets the connections it stalled, the way a middlebox that dropped their state
    would, so that a client on a long timeout notices the recovery promptly; nothing they sent was forwarded.
    ``set_mode(Mode.PASS, reset_stalled=False)`` leaves them hung instead (a peer that vanished without a
    reset), until a later ``set_mode`` resets them: only the connections opened from then on work, the way one
    stuck call among healthy ones looks.

The proxy runs an asyncio loop in a background thread; ``set_mode`` is thread-safe and takes effect before it
returns. ``python -m devstack.faultproxy --upstream HOST:PORT`` runs one standalone, with a small control
endpoint (``PUT /mode?mode=refuse&latency=0.2``, ``GET /stats``) on a second loopback port.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import enum
import json
import socket
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Self
from urllib.parse import parse_qs, urlsplit

LOOPBACK = "127.0.0.1"
_CHUNK = 65536


class Mode(enum.Enum):
    PASS = "pass"  # noqa: S105 # nosec B105 - a mode name, not a password
    REFUSE = "refuse"
    LATENCY = "latency"
    BLACKHOLE = "blackhole"


@dataclass
class ProxyStats:
    """Counters since the proxy started (a copy; read with ``FaultProxy.stats()``)."""

    accepted: int = 0
    refused: int = 0  # connections reset at accept time (refuse mode)
    reset: int = 0  # open connections reset by a mode change
    bytes_up: int = 0  # client -> upstream, forwarded
    bytes_down: int = 0  # upstream -> client, forwarded
    dropped_bytes: int = 0  # read from the client and discarded (blackhole)
    upstream_failures: int = 0  # the upstream refused or could not be reached
    open_connections: int = 0
    mode_changes: list[tuple[float, str]] = field(default_factory=list)


@dataclass(eq=False)
class _Connection:
    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter | None = None
    stalled: bool = False  # saw blackhole mode: reset when the mode changes
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


def _reset(writer: asyncio.StreamWriter) -> None:
    """Closes with RST instead of FIN, so the peer sees 'connection reset', not a clean end of stream."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class FaultProxy:
    """One listening port on 127.0.0.1 forwarding to ``upstream_host:upstream_port``, with switchable faults."""

    def __init__(self, upstream_host: str, upstream_port: int, *, listen_port: int = 0, name: str = "proxy") -> None:
        self.upstream_host = upstream_host
        self.upstream_port = upstream_port
        self.name = name
        self._listen_port = listen_port
        self._mode = Mode.PASS
        self._latency = 0.0
        self._stats = ProxyStats()
        self._connections: set[_Connection] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.port = 0

    @classmethod
    def for_url(cls, url: str, *, name: str = "proxy") -> FaultProxy:
        """A proxy for an ``http://host:port`` endpoint URL."""
        parts = urlsplit(url)
        if parts.hostname is None or parts.port is None:
            raise ValueError(f"{url!r} has no host and port")
        return cls(parts.hostname, parts.port, name=name)

    # -- public API (any thread) ----------------------------------------------------------------------

    @property
    def endpoint_url(self) -> str:
        if not self.port:
            raise RuntimeError("the proxy is not started")
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def mode(self) -> Mode:
        return self._mode

    def start(self) -> Self:
        if self._thread is not None:
            raise RuntimeError("the proxy is already started")
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                self._server = loop.run_until_complete(
                    asyncio.start_server(self._handle, LOOPBACK, self._listen_port, backlog=1024)
                )
                self.port = int(self._server.sockets[0].getsockname()[1])
            except BaseException as exc:  # reported to the starting thread
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        self._thread = threading.Thread(target=run, name=f"faultproxy-{self.name}", daemon=True)
        self._thread.start()
        ready.wait(10)
        if failure:
            self._thread = None
            raise failure[0]
        return self

    def set_mode(self, mode: Mode | str, *, latency: float = 0.0, reset_stalled: bool = True) -> None:
        """Switches the fault; open connections are treated as the mode says before this returns.

        ``reset_stalled=False``: connections a blackhole stalled stay stalled (not reset, nothing forwarded).
        """
        mode = Mode(mode)
        if mode is Mode.LATENCY and latency <= 0:
            raise ValueError("latency mode needs latency > 0")
        if latency < 0:
            raise ValueError("latency must be >= 0")
        loop = self._require_loop()
        future = asyncio.run_coroutine_threadsafe(self._apply(mode, latency, reset_stalled), loop)
        future.result(10)

    @contextlib.contextmanager
    def fault(self, mode: Mode | str, *, latency: float = 0.0) -> Iterator[None]:
        """``with proxy.fault(Mode.REFUSE): ...`` then back to pass."""
        self.set_mode(mode, latency=latency)
        try:
            yield
        finally:
            self.set_mode(Mode.PASS)

    def stats(self) -> ProxyStats:
        with self._lock:
            copy = ProxyStats(**{**self._stats.__dict__, "mode_changes": list(self._stats.mode_changes)})
        copy.open_connections = len(self._connections)
        return copy

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        with contextlib.suppress(RuntimeError):
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        self._thread = None
        self._loop = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    # -- inside the loop ------------------------------------------------------------------------------

    def _require_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RuntimeError("the proxy is not started")
        return self._loop

    def _count(self, name: str, amount: int = 1) -> None:
        with self._lock:
            setattr(self._stats, name, getattr(self._stats, name) + amount)

    async def _apply(self, mode: Mode, latency: float, reset_stalled: bool = True) -> None:
        previous = self._mode
        self._mode = mode
        self._latency = latency
        with self._lock:
            self._stats.mode_changes.append((time.time(), mode.value))
        for connection in list(self._connections):
            if mode is Mode.REFUSE or (connection.stalled and mode is not Mode.BLACKHOLE and reset_stalled):
                self._drop(connection)
                self._count("reset")
            elif mode is Mode.BLACKHOLE:
                connection.stalled = True
        del previous

    def _drop(self, connection: _Connection) -> None:
        self._connections.discard(connection)
        _reset(connection.client)
        if connection.upstream is not None:
            _reset(connection.upstream)
        for task in connection.tasks:
            task.cancel()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._count("accepted")
        if self._mode is Mode.REFUSE:
            self._count("refused")
            _reset(writer)
            return
        connection = _Connection(client=writer, stalled=self._mode is Mode.BLACKHOLE)
        self._connections.add(connection)
        try:
            if connection.stalled:  # blackhole: hold it; the mode change that ends it resets it
                await self._swallow(reader, connection)
                return
            try:
                up_reader, up_writer = await asyncio.open_connection(self.upstream_host, self.upstream_port)
            except OSError:
                self._count("upstream_failures")
                _reset(writer)
                return
            connection.upstream = up_writer
            if connection not in self._connections:  # reset while connecting
                _reset(up_writer)
                return
            up = asyncio.ensure_future(self._pump(reader, up_writer, connection, "bytes_up"))
            down = asyncio.ensure_future(self._pump(up_reader, writer, connection, "bytes_down"))
            connection.tasks = [up, down]
            await asyncio.gather(up, down, return_exceptions=True)
        finally:
            if connection in self._connections:
                self._connections.discard(connection)
                with contextlib.suppress(Exception):
                    writer.close()
                if connection.upstream is not None:
                    with contextlib.suppress(Exception):
                        connection.upstream.close()

    async def _swallow(self, reader: asyncio.StreamReader, connection: _Connection) -> None:
        while connection in self._connections:
            data = await reader.read(_CHUNK)
            if not data:
                return
            self._count("dropped_bytes", len(data))

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, connection: _Connection, counter: str
    ) -> None:
        try:
            while True:
                data = await reader.read(_CHUNK)
                if not data:
                    break
                while self._mode is Mode.BLACKHOLE or connection.stalled:
                    connection.stalled = True
                    self._count("dropped_bytes", len(data))
                    data = await reader.read(_CHUNK)
                    if not data:
                        return
                if self._mode is Mode.LATENCY and self._latency > 0:
                    await asyncio.sleep(self._latency)
                writer.write(data)
                self._count(counter, len(data))
                await writer.drain()
            with contextlib.suppress(OSError):
                if writer.can_write_eof():
                    writer.write_eof()
        except (ConnectionError, OSError):
            if connection in self._connections:
                self._drop(connection)

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for connection in list(self._connections):
            self._drop(connection)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)


# -- standalone use ---------------------------------------------------------------------------------------


def _control_server(proxy: FaultProxy, port: int) -> ThreadingHTTPServer:
    class Control(BaseHTTPRequestHandler):
        def _answer(self, status: int, document: object) -> None:
            body = json.dumps(document).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            stats = proxy.stats()
            self._answer(200, {"mode": proxy.mode.value, **stats.__dict__})

        def do_PUT(self) -> None:
            query = parse_qs(urlsplit(self.path).query)
            try:
                proxy.set_mode(query.get("mode", ["pass"])[0], latency=float(query.get("latency", ["0"])[0]))
            except ValueError as exc:
                self._answer(400, {"error": str(exc)})
                return
            self._answer(200, {"mode": proxy.mode.value})

        def log_message(self, format: str, *args: object) -> None:
            return

    return ThreadingHTTPServer((LOOPBACK, port), Control)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.faultproxy", description=__doc__.split("\n\n")[0])
    parser.add_argument("--upstream", required=True, help="HOST:PORT to forward to")
    parser.add_argument("--port", type=int, default=0, help="listening port on 127.0.0.1 (0: a free one)")
    parser.add_argument("--control-port", type=int, default=0, help="control endpoint port (0: a free one)")
    args = parser.parse_args(argv)
    host, _, port = args.upstream.rpartition(":")
    proxy = FaultProxy(host or LOOPBACK, int(port), listen_port=args.port).start()
    control = _control_server(proxy, args.control_port)
    print(
        f"proxy {proxy.endpoint_url} -> {args.upstream}; control http://{LOOPBACK}:{control.server_address[1]}",
        flush=True,
    )
    try:
        control.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        control.server_close()
        proxy.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
