"""moto as a server process: the local AWS (SSM, SQS, S3) of the embedded default."""

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

    def start(self, timeout: float = 60.0) -> None:
        self.process.start()
        self.process.wait_until(f"{self.endpoint_url}/moto-api/data.json", timeout=timeout)

    def stop(self) -> None:
        self.process.stop(timeout=10)
