"""Jaeger v2 as a local trace backend: OTLP in (gRPC and HTTP), traces kept in memory, the query API out.

A build from the Go module proxy has no UI assets (the release bundles the separately built jaeger-ui): its page is a
placeholder, the query API (what the UI and Grafana's Jaeger data source read) is complete.

``scripts/tools/install-jaeger.sh`` builds it (``<tools dir>/bin/jaeger``). Its built-in all-in-one configuration
listens on fixed ports on every interface; ours is written per process with every listener on 127.0.0.1 and ports
of our choosing, no self-telemetry server (the collector's own metrics would take port 8888) and no self-tracing.
"""

from __future__ import annotations

import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import orjson

from devstack.processes import LOOPBACK, ManagedProcess, free_port
from devstack.tools import tools_bin

INSTALLER = "scripts/tools/install-jaeger.sh"


def jaeger_binary() -> Path:
    return tools_bin() / "jaeger"


def jaeger_config(*, otlp_grpc: int, otlp_http: int, query_http: int, query_grpc: int, max_traces: int) -> str:
    """The all-in-one pipeline (OTLP receiver, batch, memory storage, query), on 127.0.0.1 only."""
    return f"""\
service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: warn

extensions:
  jaeger_query:
    # Jaeger would trace its own queries to localhost:4317 (its default), which may be ours or nobody's.
    enable_tracing: false
    storage:
      traces: memstore
    http:
      endpoint: "{LOOPBACK}:{query_http}"
    grpc:
      endpoint: "{LOOPBACK}:{query_grpc}"
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: {max_traces}

receivers:
  otlp:
    protocols:
      grpc:
        endpoint: "{LOOPBACK}:{otlp_grpc}"
      http:
        endpoint: "{LOOPBACK}:{otlp_http}"

processors:
  batch:
    timeout: 200ms

exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
"""


class JaegerServer:
    """One Jaeger process; `otlp_http_url` / `otlp_grpc_url` for OTEL_EXPORTER_OTLP_ENDPOINT, `query_url` for the
    query API."""

    def __init__(
        self,
        *,
        query_port: int = 0,
        otlp_http_port: int = 0,
        otlp_grpc_port: int = 0,
        log_path: Path | None = None,
        binary: Path | None = None,
        max_traces: int = 100_000,
    ) -> None:
        self.binary = binary or jaeger_binary()
        self.query_port = query_port or free_port()
        self.otlp_http_port = otlp_http_port or free_port()
        self.otlp_grpc_port = otlp_grpc_port or free_port()
        self.query_url = f"http://{LOOPBACK}:{self.query_port}"
        self.otlp_http_url = f"http://{LOOPBACK}:{self.otlp_http_port}"
        self.otlp_grpc_url = f"http://{LOOPBACK}:{self.otlp_grpc_port}"
        self.log_path = log_path
        self._config_dir = Path(tempfile.mkdtemp(prefix="jaeger-"))
        self.config_path = self._config_dir / "jaeger.yaml"
        self.config_path.write_text(
            jaeger_config(
                otlp_grpc=self.otlp_grpc_port,
                otlp_http=self.otlp_http_port,
                query_http=self.query_port,
                query_grpc=free_port(),
                max_traces=max_traces,
            )
        )
        self.process = ManagedProcess(
            "jaeger", [str(self.binary), "--config", f"file:{self.config_path}"], log_path=log_path
        )

    def installed(self) -> bool:
        return self.binary.is_file()

    def spawn(self) -> None:
        if not self.installed():
            raise FileNotFoundError(f"jaeger is not installed at {self.binary}: run {INSTALLER}")
        self.process.start()

    def wait_ready(self, timeout: float = 30.0) -> None:
        self.process.wait_until(f"{self.query_url}/api/services", timeout=timeout)

    def start(self, timeout: float = 30.0) -> None:
        self.spawn()
        self.wait_ready(timeout)

    def stop(self) -> None:
        try:
            self.process.stop(timeout=10)
        finally:
            shutil.rmtree(self._config_dir, ignore_errors=True)

    # -- the query API (what the UI reads) ------------------------------------------------------------

    def _get(self, path: str, **query: str) -> Any:
        url = f"{self.query_url}{path}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - our own loopback server
            return orjson.loads(response.read())

    def services(self) -> list[str]:
        return list(self._get("/api/services").get("data") or [])

    def trace(self, trace_id: str) -> dict[str, Any] | None:
        """One trace as the UI gets it (spans, processes), or None while Jaeger does not have it."""
        try:
            data = self._get(f"/api/traces/{trace_id}").get("data") or []
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise
        return data[0] if data else None

    def traces(self, service: str, *, limit: int = 20, **query: str) -> list[dict[str, Any]]:
        return list(self._get("/api/traces", service=service, limit=str(limit), **query).get("data") or [])
