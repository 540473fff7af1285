"""moto as a server process: the local AWS of the zero-install default (SSM, SQS, S3), and SSM of LOCAL_AWS=fast."""

from __future__ import annotations

from pathlib import Path

from devstack.processes import LOOPBACK, ManagedProcess, free_port, python_module


class MotoServer:
    def __init__(self, port: int = 0, *, log_path: Path | None = None) -> None:
        self.port = port or free_port()
        self.endpoint_url = f"http://{LOOPBACK}:{self.port}"
        self.process = ManagedProcess(
            "moto", python_module("moto.server", "-H", LOOPBACK, "-p", str(self.port)), log_path=log_path
        )

    def spawn(self) -> None:
        """Starts the process without waiting (see wait_ready): the caller can start others meanwhile."""
        self.process.start()

    def wait_ready(self, timeout: float = 60.0) -> None:
        self.process.wait_until(f"{self.endpoint_url}/moto-api/data.json", timeout=timeout)

    def start(self, timeout: float = 60.0) -> None:
        self.spawn()
        self.wait_ready(timeout)

    def stop(self) -> None:
        self.process.stop(timeout=10)
