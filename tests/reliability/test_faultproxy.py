"""devstack.faultproxy against a tiny echo server: each mode does what it says, switchable at run time."""

from __future__ import annotations

import json
import socket
import socketserver
import threading
import time
import urllib.request
from collections.abc import Iterator

import pytest

from devstack.faultproxy import FaultProxy, Mode, _control_server
from tests.aws_helpers import wait_for


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(65536):
            self.request.sendall(data)


@pytest.fixture
def proxy() -> Iterator[FaultProxy]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with FaultProxy("127.0.0.1", server.server_address[1], name="echo") as running:
        yield running
    server.shutdown()
    server.server_close()


def _connect(proxy: FaultProxy, timeout: float = 2.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", proxy.port), timeout=timeout)


def _echo(sock: socket.socket, payload: bytes = b"ping") -> bytes:
    sock.sendall(payload)
    received = b""
    while len(received) < len(payload):
        chunk = sock.recv(65536)
        if not chunk:
            break
        received += chunk
    return received


def _is_reset(sock: socket.socket) -> bool:
    """True when the peer reset or closed the connection (what a client sees from a dead endpoint)."""
    try:
        sock.sendall(b"x")
        return sock.recv(1) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True


def _new_connection_is_reset(proxy: FaultProxy) -> bool:
    """A fresh connection is reset: the reset can even beat connect() back to the client."""
    try:
        sock = _connect(proxy)
    except ConnectionResetError:
        return True
    with sock:
        return _is_reset(sock)


def test_pass_forwards_both_ways_and_counts_bytes(proxy: FaultProxy) -> None:
    payload = b"a" * 200_000
    with _connect(proxy) as sock:
        assert _echo(sock, payload) == payload
    deadline = time.monotonic() + 2
    while proxy.stats().bytes_down < 200_000 and time.monotonic() < deadline:  # counted right after the write
        time.sleep(0.01)
    stats = proxy.stats()
    assert stats.accepted == 1
    assert (stats.bytes_up, stats.bytes_down) == (200_000, 200_000)


def test_refuse_resets_open_and_new_connections_then_recovers(proxy: FaultProxy) -> None:
    with _connect(proxy) as open_before:
        assert _echo(open_before) == b"ping"
        proxy.set_mode(Mode.REFUSE)
        assert _is_reset(open_before)
    assert _new_connection_is_reset(proxy)
    wait_for(lambda: proxy.stats().refused >= 1 and proxy.stats().reset >= 1, timeout=5, message="the counts")
    proxy.set_mode(Mode.PASS)
    with _connect(proxy) as after:
        assert _echo(after) == b"ping"


def test_latency_delays_each_direction(proxy: FaultProxy) -> None:
    with _connect(proxy) as sock:
        assert _echo(sock) == b"ping"
        proxy.set_mode(Mode.LATENCY, latency=0.25)
        started = time.monotonic()
        assert _echo(sock) == b"ping"
        elapsed = time.monotonic() - started
    assert 0.5 <= elapsed < 2.0  # 0.25 s up and 0.25 s down


def test_blackhole_never_answers_and_leaving_it_resets_the_stalled_connections(proxy: FaultProxy) -> None:
    with _connect(proxy) as open_before, _connect(proxy, timeout=0.5) as probe:
        assert _echo(open_before) == b"ping"
        proxy.set_mode(Mode.BLACKHOLE)
        open_before.settimeout(0.5)
        with _connect(proxy, timeout=0.5) as new:
            for sock in (open_before, new):
                sock.sendall(b"hello")
                with pytest.raises(TimeoutError):
                    sock.recv(10)
        assert proxy.stats().dropped_bytes >= 10
        proxy.set_mode(Mode.PASS)
        open_before.settimeout(2)
        assert _is_reset(open_before)
        del probe
    with _connect(proxy) as after:
        assert _echo(after) == b"ping"


def test_leaving_blackhole_without_reset_keeps_the_stalled_connections_hung(proxy: FaultProxy) -> None:
    with _connect(proxy) as open_before:
        assert _echo(open_before) == b"ping"
        proxy.set_mode(Mode.BLACKHOLE)
        proxy.set_mode(Mode.PASS, reset_stalled=False)
        open_before.settimeout(0.5)
        open_before.sendall(b"hello")
        with pytest.raises(TimeoutError):
            open_before.recv(10)  # neither answered nor reset: hung
        with _connect(proxy) as new:
            assert _echo(new) == b"ping", "new connections pass"
        proxy.set_mode(Mode.PASS)  # a later change with the default resets it after all
        open_before.settimeout(2)
        assert _is_reset(open_before)


def test_fault_context_manager_restores_pass(proxy: FaultProxy) -> None:
    with proxy.fault(Mode.REFUSE):
        during = proxy.mode
    assert during is Mode.REFUSE
    assert proxy.mode.value == "pass"
    assert [mode for _, mode in proxy.stats().mode_changes] == ["refuse", "pass"]


def test_bad_modes_are_refused(proxy: FaultProxy) -> None:
    with pytest.raises(ValueError, match="latency"):
        proxy.set_mode(Mode.LATENCY)
    with pytest.raises(ValueError, match="partition"):
        proxy.set_mode("partition")
    assert proxy.mode is Mode.PASS


def test_upstream_down_resets_the_client() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    with FaultProxy("127.0.0.1", port) as proxy:
        assert _new_connection_is_reset(proxy)
        wait_for(lambda: proxy.stats().upstream_failures == 1, timeout=5, message="the proxy to count the failure")


def test_control_endpoint_switches_the_mode(proxy: FaultProxy) -> None:
    control = _control_server(proxy, 0)
    threading.Thread(target=control.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{control.server_address[1]}"
    try:
        request = urllib.request.Request(f"{base}/mode?mode=latency&latency=0.1", method="PUT")
        with urllib.request.urlopen(request, timeout=5) as response:
            assert json.loads(response.read()) == {"mode": "latency"}
        assert proxy.mode is Mode.LATENCY
        bad = urllib.request.Request(f"{base}/mode?mode=nonsense", method="PUT")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(bad, timeout=5)
        assert refused.value.code == 400
        with urllib.request.urlopen(f"{base}/stats", timeout=5) as response:
            assert json.loads(response.read())["mode"] == "latency"
    finally:
        control.shutdown()
        control.server_close()
