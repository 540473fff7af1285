"""`make observe` (python -m observability.observe): starts the stack and a Prometheus, and stops all of it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import IO

import psutil
import pytest

from devstack.processes import free_port
from observability.observe import READY_LINE, prometheus_api
from tests.aws_helpers import seed_payload
from tests.support.api import post_many
from tests.tooling import REPO_ROOT, TOOLS_BIN, require_tool

pytestmark = pytest.mark.tools

PORT_VARIABLES = ("API_PORT", "CONSUMER_PORT", "EMULATOR_PORT", "PROMETHEUS_PORT")


class Observe:
    """`python -m observability.observe` as a child process, its output collected line by line."""

    def __init__(self, extra_env: dict[str, str]) -> None:
        self.ports = {name: free_port() for name in PORT_VARIABLES}
        env = {
            **os.environ,
            "PATH": os.pathsep.join([str(TOOLS_BIN), os.environ.get("PATH", "")]),
            "PROMETHEUS_SCRAPE_INTERVAL": "1s",
            **{name: str(port) for name, port in self.ports.items()},
            **extra_env,
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "observability.observe"],
            cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._seen: list[str] = []
        assert self.process.stdout is not None
        self._pump = threading.Thread(target=self._read, args=(self.process.stdout,), daemon=True)
        self._pump.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self._lines.put(line)
        self._lines.put(None)

    def wait_for_line(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._lines.get(timeout=0.5)
            except queue.Empty:
                continue
            if line is None:
                break
            self._seen.append(line)
            if text in line:
                return
        pytest.fail(f"no {text!r} within {timeout} s; exit code {self.process.poll()}; output:\n{self.output()}")

    def output(self) -> str:
        """What it printed so far (all of it once it exited and its output is closed)."""
        if self.process.poll() is not None:
            self._pump.join(timeout=10)
        while True:
            try:
                line = self._lines.get_nowait()
            except queue.Empty:
                break
            if line is not None:
                self._seen.append(line)
        return "".join(self._seen)

    def kill_tree(self) -> None:
        """Only when a test failed half-way: kills what this test started, by pid."""
        try:
            children = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            children = []
        for child in children:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=30)


StartObserve = Callable[[dict[str, str]], Observe]


@pytest.fixture
def start_observe() -> Iterator[StartObserve]:
    started: list[Observe] = []

    def start(extra_env: dict[str, str]) -> Observe:
        require_tool("prometheus")
        started.append(Observe(extra_env))
        return started[-1]

    yield start
    for running in started:
        if running.process.poll() is None:
            running.kill_tree()


def test_observe_runs_the_stack_with_prometheus_and_stops_everything(start_observe: StartObserve) -> None:
    observe = start_observe({})
    observe.wait_for_line(READY_LINE, timeout=120)
    prometheus_url = f"http://127.0.0.1:{observe.ports['PROMETHEUS_PORT']}"
    output = observe.output()
    for where in (prometheus_url, f"{prometheus_url}/targets", f"{prometheus_url}/alerts", "observability/README.md",
                  f"http://127.0.0.1:{observe.ports['API_PORT']}"):  # fmt: skip
        assert where in output, f"{where} is not printed:\n{output}"

    # Prometheus scrapes both services, and they are up.
    expected = {"email-ingest-api": "up", "email-ingest-consumer": "up"}
    targets: dict[str, str] = {}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        answer = prometheus_api(prometheus_url, "/api/v1/targets")
        targets = {target["labels"]["job"]: target["health"] for target in answer["data"]["activeTargets"]}
        if targets == expected:
            break
        time.sleep(0.5)
    assert targets == expected, f"{targets}\n{observe.output()}"
    # With the alert rules loaded.
    groups = {group["name"] for group in prometheus_api(prometheus_url, "/api/v1/rules")["data"]["groups"]}
    assert {"email-ingest-targets.alerts", "email-ingest-api.alerts", "email-ingest-consumer.alerts"} <= groups

    children = psutil.Process(observe.process.pid).children(recursive=True)
    commands = [" ".join(child.cmdline()) for child in children]
    for program in ("moto.server", "api_service", "consumer_service", "prometheus"):
        assert any(program in command for command in commands), f"no {program} among {commands}"

    observe.process.send_signal(signal.SIGTERM)
    assert observe.process.wait(timeout=90) == 0, observe.output()
    _, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, f"still running after observe exited: {alive}"
    for name in PORT_VARIABLES:
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", observe.ports[name])) != 0, f"{name} still answers"


def test_observe_refuses_a_busy_prometheus_port(start_observe: StartObserve) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        observe = start_observe({"PROMETHEUS_PORT": str(busy.getsockname()[1])})
        assert observe.process.wait(timeout=60) == 1
    output = observe.output()
    assert "is in use" in output, output
    assert READY_LINE not in output


def test_observe_refuses_a_bad_scrape_interval(start_observe: StartObserve) -> None:
    observe = start_observe({"PROMETHEUS_SCRAPE_INTERVAL": "often"})
    assert observe.process.wait(timeout=60) == 1
    output = observe.output()
    assert "PROMETHEUS_SCRAPE_INTERVAL" in output, output
    assert READY_LINE not in output


def test_observe_stops_what_it_started_when_signalled_while_starting(start_observe: StartObserve) -> None:
    observe = start_observe({})
    parent = psutil.Process(observe.process.pid)
    deadline = time.monotonic() + 60
    while not parent.children(recursive=True) and time.monotonic() < deadline:
        time.sleep(0.05)
    children = parent.children(recursive=True)
    assert children, f"observe started nothing within 60 s:\n{observe.output()}"
    observe.process.send_signal(signal.SIGTERM)
    children += [child for child in parent.children(recursive=True) if child not in children]
    assert observe.process.wait(timeout=90) == 0, observe.output()
    _, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, f"still running after observe exited: {alive}"
    assert READY_LINE not in observe.output()


def test_observe_with_tracing_jaeger_links_exemplars_to_traces(start_observe: StartObserve) -> None:
    """TRACING=jaeger: Jaeger beside Prometheus, both services tracing into it; Prometheus keeps the exemplars of
    the scraped OpenMetrics, and an exemplar's trace id is a trace Jaeger holds, across both services."""
    require_tool("jaeger")
    jaeger_ports = {name: free_port() for name in ("JAEGER_PORT", "JAEGER_OTLP_GRPC_PORT", "JAEGER_OTLP_HTTP_PORT")}
    token = "observe-tracing-token"
    observe = start_observe({"TRACING": "jaeger", "API_TOKEN": token, **{k: str(v) for k, v in jaeger_ports.items()}})
    observe.wait_for_line(READY_LINE, timeout=120)
    jaeger_url = f"http://127.0.0.1:{jaeger_ports['JAEGER_PORT']}"
    assert jaeger_url in observe.output()
    api_url = f"http://127.0.0.1:{observe.ports['API_PORT']}"
    prometheus_url = f"http://127.0.0.1:{observe.ports['PROMETHEUS_PORT']}"
    [(status, _)] = asyncio.run(post_many(api_url, [seed_payload(token)], [{}]))
    assert status == 200

    def exemplar_trace() -> str | None:
        answer = prometheus_api(
            prometheus_url,
            "/api/v1/query_exemplars",
            {"query": 'email_ingest_api_request_duration_seconds_bucket{route="/api/email"}',
             "start": str(time.time() - 600), "end": str(time.time() + 60)},
        )  # fmt: skip
        for series in answer.get("data") or []:
            for exemplar in series["exemplars"]:
                return str(exemplar["labels"]["trace_id"])
        return None

    trace_id: str | None = None
    services: set[str] = set()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        trace_id = trace_id or exemplar_trace()
        if trace_id is not None:
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(f"{jaeger_url}/api/traces/{trace_id}", timeout=5) as response:
                    trace = json.load(response)["data"][0]
                services = {process["serviceName"] for process in trace["processes"].values()}
            if services == {"email-ingest-api", "email-ingest-consumer"}:
                break
        time.sleep(1)
    assert trace_id is not None, f"Prometheus kept no exemplar\n{observe.output()}"
    assert services == {"email-ingest-api", "email-ingest-consumer"}, f"trace {trace_id}: {services}"

    children = psutil.Process(observe.process.pid).children(recursive=True)
    assert any("jaeger" in " ".join(child.cmdline()) for child in children)
    observe.process.send_signal(signal.SIGTERM)
    assert observe.process.wait(timeout=90) == 0, observe.output()
    _, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, f"still running after observe exited: {alive}"
