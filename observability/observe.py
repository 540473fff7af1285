"""`make observe`: the local pipeline of `make run` plus a Prometheus scraping it and loading the alert rules.

    python -m observability.observe

Environment: the variables of `make run` (LOCAL_AWS, API_PORT, CONSUMER_PORT, EMULATOR_PORT, SQS_PORT, S3_PORT,
API_TOKEN; see devstack/__main__.py), PROMETHEUS_PORT (9090), PROMETHEUS_SCRAPE_INTERVAL (5s), PROMETHEUS_BIN (the
`prometheus` binary; default: PATH, then the tools folder of scripts/tools/install-observability.sh).
TRACING=jaeger also starts Jaeger (scripts/tools/install-jaeger.sh) and points both services' OTEL_* at it:
JAEGER_PORT (16686, the UI and query API), JAEGER_OTLP_GRPC_PORT (4317), JAEGER_OTLP_HTTP_PORT (4318); the sampler
is OTEL_TRACES_SAMPLER's when set, else always_on. Prometheus keeps exemplars (the trace ids on the latency
histograms, scraped as OpenMetrics). Everything
binds 127.0.0.1; Prometheus keeps its data in a temporary folder that is deleted on exit, the local AWS servers
their logs in another that is kept (the banner names the files). Ctrl-C or SIGTERM stops everything.

`PrometheusServer` is also what the tests use to run a real Prometheus (tests/observability/).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, Self

from devstack.__main__ import aws_banner, curl_example, missing_tools
from devstack.jaeger import INSTALLER as JAEGER_INSTALLER
from devstack.jaeger import JaegerServer
from devstack.processes import LOOPBACK, ManagedProcess, ProcessFailed, free_port, port_from_env
from devstack.settings import stack_config_from_env
from devstack.stack import DevStack, StackConfig
from devstack.tools import find_tool
from observability.prometheus_config import render

DEFAULT_SCRAPE_INTERVAL = "5s"
TRACING_CHOICES = ("off", "jaeger")
JAEGER_PORTS = {"JAEGER_PORT": 16686, "JAEGER_OTLP_GRPC_PORT": 4317, "JAEGER_OTLP_HTTP_PORT": 4318}
READY_LINE = "email-ingest and Prometheus are ready (Ctrl-C to stop)"
EXAMPLE_QUERIES = (
    'sum by (code) (rate(email_ingest_api_requests_total{route="/api/email"}[1m]))',
    "sum(rate(email_ingest_api_emails_accepted_total[1m])) - sum(rate(email_ingest_consumer_emails_stored_total[1m]))",
    "max by (queue, state) (email_ingest_queue_messages)",
    "histogram_quantile(0.99, sum by (le) (rate(email_ingest_api_request_duration_seconds_bucket[1m])))",
)


def find_prometheus() -> str | None:
    explicit = os.environ.get("PROMETHEUS_BIN")
    if explicit:
        return explicit if Path(explicit).is_file() else None
    return find_tool("prometheus")


def prometheus_api(
    base_url: str, path: str, params: dict[str, str] | None = None, *, timeout: float = 10.0
) -> dict[str, Any]:
    """The JSON answer of a Prometheus HTTP API call; on an HTTP error, its JSON body (`status: error`, `error`)."""
    url = f"{base_url}{path}" + (f"?{urllib.parse.urlencode(params)}" if params else "")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - a loopback URL we build
            data: dict[str, Any] = json.load(response)
            return data
    except urllib.error.HTTPError as exc:
        body = exc.read()
        try:
            parsed: dict[str, Any] = json.loads(body or b"{}")
        except ValueError:
            return {"status": "error", "error": f"HTTP {exc.code}: {body[:300]!r}"}
        return parsed


class PrometheusServer:
    """A Prometheus process on 127.0.0.1 with its configuration, data and log in `workdir`."""

    def __init__(self, binary: str, config_text: str, workdir: Path, *, port: int = 0) -> None:
        self.binary = binary
        self.config_text = config_text
        self.workdir = workdir
        self.port = port or free_port()
        self.url = f"http://{LOOPBACK}:{self.port}"
        self.log_path = workdir / "prometheus.log"
        self.process = ManagedProcess(
            "prometheus",
            [
                binary,
                f"--config.file={workdir / 'prometheus.yml'}",
                f"--web.listen-address={LOOPBACK}:{self.port}",
                f"--storage.tsdb.path={workdir / 'data'}",
                # Keeps the exemplars (trace ids) of the scraped OpenMetrics histograms, for the dashboards' links.
                "--enable-feature=exemplar-storage",
            ],
            log_path=self.log_path,
            cwd=workdir,
        )

    def start(self, timeout: float = 60.0) -> Self:
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "prometheus.yml").write_text(self.config_text, encoding="utf-8")
        self.process.start()
        try:
            self.process.wait_until(f"{self.url}/-/ready", timeout=timeout)
        except ProcessFailed as exc:
            self.process.stop(timeout=10)
            raise ProcessFailed(f"{exc}\n--- {self.log_path}\n{self.log_text()[-4000:]}") from None
        return self

    def stop(self) -> None:
        self.process.stop(timeout=30)

    def running(self) -> bool:
        return self.process.running()

    def log_text(self) -> str:
        return self.process.log_text()

    def get(self, path: str, params: dict[str, str] | None = None, *, timeout: float = 10.0) -> dict[str, Any]:
        return prometheus_api(self.url, path, params, timeout=timeout)

    def query(self, promql: str) -> dict[str, Any]:
        """An instant query (`/api/v1/query`)."""
        return self.get("/api/v1/query", {"query": promql})

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()


def graph_link(prometheus_url: str, promql: str) -> str:
    return f"{prometheus_url}/graph?" + urllib.parse.urlencode(
        {"g0.expr": promql, "g0.tab": "0", "g0.range_input": "15m"}
    )


def tracing_from_env() -> str:
    raw = os.environ.get("TRACING", "").strip().lower() or "off"
    if raw not in TRACING_CHOICES:
        raise SystemExit(f"observe: TRACING={raw!r}: choose one of {', '.join(TRACING_CHOICES)}")
    return raw


def jaeger_ports_from_env() -> dict[str, int]:
    """Jaeger's ports (variable -> port) with TRACING=jaeger; none without."""
    if tracing_from_env() != "jaeger":
        return {}
    return {name: port_from_env(name, default, program="observe") for name, default in JAEGER_PORTS.items()}


def tracing_backend(config: StackConfig, ports: dict[str, int]) -> JaegerServer | None:
    """The Jaeger to start (None without TRACING=jaeger), both services' OTEL_* pointed at it."""
    if not ports:
        return None
    jaeger = JaegerServer(
        query_port=ports["JAEGER_PORT"],
        otlp_grpc_port=ports["JAEGER_OTLP_GRPC_PORT"],
        otlp_http_port=ports["JAEGER_OTLP_HTTP_PORT"],
        log_path=Path(tempfile.mkdtemp(prefix="email-ingest-jaeger-")) / "jaeger.log",
    )
    if not jaeger.installed():
        raise SystemExit(f"observe: TRACING=jaeger: jaeger is not installed: run bash {JAEGER_INSTALLER}")
    config.api_env.update(tracing_env(jaeger))
    config.consumer_env.update(tracing_env(jaeger))
    return jaeger


def tracing_env(jaeger: JaegerServer) -> dict[str, str]:
    """OTEL_* for both services: OTLP over HTTP to the local Jaeger; the operator's sampler if set, else every trace."""
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": jaeger.otlp_http_url,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_TRACES_SAMPLER": os.environ.get("OTEL_TRACES_SAMPLER", "").strip() or "always_on",
        "OTEL_BSP_SCHEDULE_DELAY": os.environ.get("OTEL_BSP_SCHEDULE_DELAY", "").strip() or "1000",
    }


def banner(
    stack: DevStack, prometheus: PrometheusServer, scrape_interval: str, jaeger: JaegerServer | None = None
) -> str:
    resources = stack.resources
    assert resources is not None
    queries = "\n".join(f"  {query}" for query in EXAMPLE_QUERIES)
    generated = "" if stack.config.token else " (generated; set API_TOKEN to choose one)"
    return (
        f"\n{aws_banner(stack)}"
        f"API:                {stack.api_url}   (/healthz /readyz /metrics /openapi.json)\n"
        f"consumer:           {stack.consumer_url}   (/healthz /readyz /metrics)\n"
        f"queue:              {resources.queue_url}\n"
        f"bucket:             s3://{resources.bucket}/emails/\n"
        f"token:              {stack.token}{generated}\n\n"
        f"Prometheus:         {prometheus.url}   (scrapes both every {scrape_interval}; alert rules loaded)\n"
        f"  targets:          {prometheus.url}/targets\n"
        f"  alerts:           {prometheus.url}/alerts\n"
        f"  rules:            {prometheus.url}/rules\n"
        f"  its log:          {prometheus.log_path}\n\n"
        + (
            f"Jaeger:             {jaeger.query_url}   (traces of both services; OTLP in on "
            f"{jaeger.otlp_grpc_url} gRPC, {jaeger.otlp_http_url} HTTP)\n"
            f"  traces:           {jaeger.query_url}/api/traces?service=email-ingest-api&limit=20\n"
            f"  (a build from the Go module proxy has no UI assets: read the query API, or add a Grafana Jaeger\n"
            f"  data source with URL {jaeger.query_url})\n"
            f"  its log:          {jaeger.log_path}\n\n"
            if jaeger is not None
            else ""
        )
        + f"Send an email:\n  {curl_example(stack.api_url, stack.token)}\n\n"
        f"Example queries ({prometheus.url}/graph):\n{queries}\n"
        f"  e.g. {graph_link(prometheus.url, EXAMPLE_QUERIES[0])}\n\n"
        f"Dashboards: in a Grafana, add a Prometheus data source with URL {prometheus.url}, then import\n"
        f"observability/dashboards/*.json (see observability/README.md, 'Importing into Grafana').\n"
    )


def _watch(
    stack: DevStack, prometheus: PrometheusServer, stopping: threading.Event, jaeger: JaegerServer | None
) -> int:
    """Until a signal (0) or until one of the servers exits on its own (1)."""
    while not stopping.wait(0.5):
        for name, alive in (
            ("api", stack.api is not None and stack.api.running()),
            ("consumer", stack.consumer is not None and stack.consumer.running()),
            ("prometheus", prometheus.running()),
            ("jaeger", jaeger is None or jaeger.process.running()),
        ):
            if not alive:
                print(f"observe: {name} exited", file=sys.stderr)
                return 1
    return 0


def _stop(prometheus: PrometheusServer | None, stack: DevStack, jaeger: JaegerServer | None) -> None:
    if prometheus is not None:
        prometheus.stop()
    stack.stop()  # before Jaeger: the services export their last spans on the way out
    if jaeger is not None:
        jaeger.stop()


def main() -> int:
    prometheus_port = port_from_env("PROMETHEUS_PORT", 9090, program="observe")
    scrape_interval = os.environ.get("PROMETHEUS_SCRAPE_INTERVAL", "").strip() or DEFAULT_SCRAPE_INTERVAL
    jaeger_ports = jaeger_ports_from_env()
    config = stack_config_from_env(
        "observe",
        other_ports={"PROMETHEUS_PORT": prometheus_port, **jaeger_ports},
        # Queue depth as often as Prometheus looks (the default, 15 s, suits production's 30 s scrapes).
        consumer_env={"QUEUE_METRICS_INTERVAL_SECONDS": "5"},
    )
    binary = find_prometheus()
    if binary is None:
        print(
            "observe: prometheus not found: run `bash scripts/tools/install-observability.sh` (Debian's "
            "`prometheus` package) or set PROMETHEUS_BIN",
            file=sys.stderr,
        )
        return 1
    problem = missing_tools(config, program="observe")
    if problem:
        print(problem, file=sys.stderr)
        return 1
    jaeger = tracing_backend(config, jaeger_ports)
    try:  # fail before starting anything when the configuration is wrong (a bad scrape interval)
        render(1, 2, scrape_interval=scrape_interval)
    except ValueError as exc:
        print(f"observe: PROMETHEUS_SCRAPE_INTERVAL: {exc}", file=sys.stderr)
        return 1

    stopping = threading.Event()
    starting = threading.Event()  # set while starting: a signal then interrupts the start-up at once
    starting.set()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stopping.set()
        if starting.is_set():
            starting.clear()
            raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    workdir = Path(tempfile.mkdtemp(prefix="email-ingest-prometheus-"))
    config.emulator_log_dir = Path(tempfile.mkdtemp(prefix="email-ingest-run-"))
    stack = DevStack(config)
    prometheus: PrometheusServer | None = None
    try:
        # Prometheus first: it takes a few seconds to apply its scrape targets, the stack starts meanwhile.
        prometheus = PrometheusServer(
            binary,
            render(stack.api_port, stack.consumer_port, scrape_interval=scrape_interval),
            workdir,
            port=prometheus_port,
        )
        prometheus.start()
        for server in (jaeger, stack):
            if server is not None:
                server.start()
    except ProcessFailed as exc:
        print(f"observe: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM while starting: stopped as asked
        return 0
    else:
        starting.clear()
        print(banner(stack, prometheus, scrape_interval, jaeger), flush=True)
        print(READY_LINE, flush=True)
        return _watch(stack, prometheus, stopping, jaeger)
    finally:
        starting.clear()  # cleaning up is not interrupted by a second signal
        print("observe: stopping", file=sys.stderr, flush=True)
        _stop(prometheus, stack, jaeger)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
