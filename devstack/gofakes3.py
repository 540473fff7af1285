"""gofakes3, an in-memory S3 server (Go), for the fast local backend, the benchmark and the soak.

moto keeps every object in its one Python process and stores ~200 emails/s here; gofakes3 is about twice as fast,
and it honours ``If-None-Match: *`` (412 when the key exists), which the consumer's exactly-once write relies on.
``scripts/tools/install-gofakes3.sh`` builds it into the tools folder (``<tools dir>/bin/gofakes3``).
"""

from __future__ import annotations

from pathlib import Path

from devstack.processes import LOOPBACK, ManagedProcess, free_port
from devstack.tools import tools_bin

INSTALLER = "scripts/tools/install-gofakes3.sh"


def gofakes3_binary() -> Path:
    return tools_bin() / "gofakes3"


class GoFakeS3Server:
    """One gofakes3 process with the in-memory backend on 127.0.0.1; its log (one line per S3 operation unless
    ``quiet``) goes to ``log_path``."""

    def __init__(
        self,
        port: int = 0,
        *,
        log_path: Path | None = None,
        quiet: bool = False,
        binary: Path | None = None,
    ) -> None:
        self.binary = binary or gofakes3_binary()
        self.port = port or free_port()
        self.endpoint_url = f"http://{LOOPBACK}:{self.port}"
        self.log_path = log_path
        args = [str(self.binary), "-backend", "memory", "-host", f"{LOOPBACK}:{self.port}"]
        self.process = ManagedProcess("gofakes3", [*args, "-quiet"] if quiet else args, log_path=log_path)

    def installed(self) -> bool:
        return self.binary.is_file()

    def spawn(self) -> None:
        """Starts the process without waiting (see wait_ready): the caller can start others meanwhile."""
        if not self.installed():
            raise FileNotFoundError(f"gofakes3 is not installed at {self.binary}: run {INSTALLER}")
        self.process.start()

    def wait_ready(self, timeout: float = 15.0) -> None:
        # ListBuckets answers 200 as soon as the server listens.
        self.process.wait_until(f"{self.endpoint_url}/", timeout=timeout)

    def start(self, timeout: float = 15.0) -> None:
        self.spawn()
        self.wait_ready(timeout)

    def stop(self) -> None:
        self.process.stop(timeout=10)
