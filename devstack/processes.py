"""Starting, probing and stopping the server processes of the local stack."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def http_status(url: str, timeout: float = 5.0) -> int | None:
    """The status of a GET, or None when nothing answers (within `timeout`).

    The one probe of the stack, the bench and the tests. 5 s: a service answering slowly on a loaded two-core
    machine is still up; a port nobody listens on answers at once, so readiness polls do not wait longer.
    """
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - loopback URLs we build
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except (OSError, TimeoutError):
        return None


class ProcessFailed(RuntimeError):
    pass


class ManagedProcess:
    """A child process with its output in a log file (or inherited), stopped with SIGTERM then SIGKILL."""

    def __init__(
        self,
        name: str,
        args: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        log_path: Path | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.args = list(args)
        self.env = dict(os.environ if env is None else env)
        self.log_path = log_path
        self.cwd = cwd
        self.process: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None

    def start(self) -> None:
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log_file = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.args,
            env=self.env,
            cwd=self.cwd,
            stdout=self._log_file,
            stderr=subprocess.STDOUT if self._log_file else None,
            stdin=subprocess.DEVNULL,
        )

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait_until(self, probe_url: str, *, timeout: float = 30.0, expect: int = 200) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running():
                raise ProcessFailed(f"{self.name} exited with {self.returncode()}; see {self.log_path or 'its output'}")
            if http_status(probe_url) == expect:
                return
            time.sleep(0.05)
        raise ProcessFailed(f"{self.name} did not answer {expect} on {probe_url} within {timeout} s")

    def returncode(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def signal(self, signum: int) -> None:
        if self.running():
            assert self.process is not None
            self.process.send_signal(signum)

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM, wait up to `timeout`, then SIGKILL. Returns the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        return self.process.returncode

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def log_text(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")


def port_from_env(name: str, default: int, *, program: str) -> int:
    """A TCP port from the environment variable `name`, or `default`; exits naming the variable when invalid."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise SystemExit(f"{program}: {name}={raw!r} is not a TCP port")
    return int(raw)


def port_in_use(port: int) -> bool:
    """Whether something already listens on 127.0.0.1:`port` (or on every address at that port).

    SO_REUSEADDR, as the servers set it: a port held only by connections closing (TIME_WAIT) counts as free.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return True
    return False


def require_free_ports(ports: Mapping[str, int], *, program: str) -> None:
    """Exits naming the variable to change when a port (by its variable's name) is taken or given twice.

    Checked before anything starts: a server that fails to bind later only says that it exited. Port 0 (a free
    port picked at start) is not checked.
    """
    problems: list[str] = []
    seen: dict[int, str] = {}
    for name, port in ports.items():
        if not port:
            continue
        if port in seen:
            problems.append(f"{name} and {seen[port]} are both {port}: set {name} to another port")
        elif port_in_use(port):
            problems.append(f"{LOOPBACK}:{port} is in use: set {name} to a free port (e.g. {name}={free_port()})")
        seen.setdefault(port, name)
    if problems:
        raise SystemExit("\n".join(f"{program}: {problem}" for problem in problems))


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def terminate_all(processes: Sequence[ManagedProcess], timeout: float = 30.0) -> None:
    for process in processes:
        with contextlib.suppress(Exception):
            process.stop(timeout)
