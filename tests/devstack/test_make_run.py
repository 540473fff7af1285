"""`make run`'s launcher (python -m devstack), as a newcomer meets it, with either local AWS: ready to take a POST,
the banner's commands work as printed (without the AWS CLI), the emulators log to the files the banner names and
not to the console, a taken port names the variable to change, and Ctrl-C / SIGTERM leaves no process behind."""

from __future__ import annotations

import contextlib
import os
import queue
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import psutil
import pytest

from devstack.processes import free_port, http_status
from tests.aws_helpers import stored_keys, wait_for
from tests.tooling import REPO_ROOT, require_fast_backend

READY = "email-ingest is ready"
PORTS = {"moto": ("API_PORT", "CONSUMER_PORT", "EMULATOR_PORT"),
         "fast": ("API_PORT", "CONSUMER_PORT", "EMULATOR_PORT", "SQS_PORT", "S3_PORT")}  # fmt: skip
# What each emulator writes for a request it served: none of it may reach the console.
ACCESS_LOG_LINE = re.compile(r'"(GET|POST|PUT) /[^"]* HTTP/1\.1" \d{3}|INFO (CREATE|GET) OBJECT')


class Launcher:
    """`python -m devstack` as a child process; its output is read all along (a full pipe would block the
    services, which log to it)."""

    def __init__(self, env_overrides: dict[str, str]) -> None:
        env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
        env.update(env_overrides)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "devstack"], cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        self._lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        assert self.process.stdout is not None
        self._pump = threading.Thread(target=self._read, args=(self.process.stdout,), daemon=True)
        self._pump.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def wait_for(self, text: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._lines.get(timeout=0.5)
            except queue.Empty:
                continue
            if line is None:
                break
            self.seen.append(line)
            if text in line:
                return
        pytest.fail(f"no {text!r} within {timeout} s (exit code {self.process.poll()}):\n" + self.output())

    def output(self) -> str:
        if self.process.poll() is not None:
            self._pump.join(timeout=10)
        while True:
            try:
                line = self._lines.get_nowait()
            except queue.Empty:
                break
            if line is not None:
                self.seen.append(line)
        return "\n".join(self.seen)

    def banner_line(self, prefix: str) -> str:
        return next(line.strip() for line in self.seen if line.strip().startswith(prefix))

    def children(self) -> list[psutil.Process]:
        return psutil.Process(self.process.pid).children(recursive=True)

    def kill_tree(self) -> None:
        """Only when a test failed half-way: kills what this test started, by pid."""
        with contextlib.suppress(psutil.NoSuchProcess):
            for child in self.children():
                with contextlib.suppress(psutil.NoSuchProcess):
                    child.kill()
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=30)


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[type[Launcher]]:
    started: list[Launcher] = []

    class Tracked(Launcher):
        def __init__(self, env_overrides: dict[str, str]) -> None:
            # The logs' temporary folder (tempfile honours TMPDIR) in the test's, not left in /tmp.
            super().__init__({"TMPDIR": str(tmp_path), **env_overrides})
            started.append(self)

    yield Tracked
    for launcher in started:
        if launcher.process.poll() is None:
            launcher.kill_tree()


def free_ports(local_aws: str) -> dict[str, str]:
    return {name: str(free_port()) for name in PORTS[local_aws]}


def run_printed(command: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """A command as the banner prints it, in a shell at the repository root (no AWS_* of ours leaks in)."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("AWS_") and key not in {"LOCAL_AWS", "S3_PORT", "EMULATOR_PORT"}}  # fmt: skip
    return subprocess.run(
        command, shell=True, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def exercise(launcher: Launcher, ports: dict[str, str], s3_port_variable: str) -> None:
    """The newcomer's path: the curl as printed, the email in the bucket, the objects command as printed."""
    assert http_status(f"http://127.0.0.1:{ports['API_PORT']}/readyz") == 200
    assert http_status(f"http://127.0.0.1:{ports['CONSUMER_PORT']}/readyz") == 200
    completed = subprocess.run(shlex.split(launcher.banner_line("curl ")), capture_output=True, text=True,
                               timeout=30, check=False)  # fmt: skip
    assert '"status":"success"' in completed.stdout, completed.stdout + completed.stderr
    email_id = re.search(r'"email_id":"([^"]+)"', completed.stdout)
    assert email_id is not None
    s3 = f"http://127.0.0.1:{ports[s3_port_variable]}"
    began = time.monotonic()
    wait_for(lambda: any(email_id.group(1) in key for key in stored_keys(s3, "email-ingest-local")),
             timeout=10, interval=0.05, message="the email in the bucket")  # fmt: skip
    assert time.monotonic() - began < 3, "a POST shows up in the bucket within about a second"

    # "See what was stored": no AWS CLI, the command exactly as printed lists the key and prints the email.
    objects = run_printed(_line_after(launcher, "See what was stored"))
    assert objects.returncode == 0, objects.stdout + objects.stderr
    assert email_id.group(1) in objects.stdout
    assert '"email_content": "Just want to say... Happy new year!!!"' in objects.stdout


def _line_after(launcher: Launcher, heading: str) -> str:
    lines = [line.strip() for line in launcher.seen]
    return lines[next(index for index, line in enumerate(lines) if line.startswith(heading)) + 1]


def emulator_logs(launcher: Launcher) -> dict[str, Path]:
    """server -> log file, as the banner names them."""
    found = re.findall(r"^\s+\S.*?\s(moto|ElasticMQ|gofakes3)\s+http://\S+\s+log: (\S+)$", launcher.output(), re.M)
    return {server: Path(path) for server, path in found}


def assert_no_access_log_on_the_console(launcher: Launcher) -> None:
    leaked = [line for line in launcher.output().splitlines() if ACCESS_LOG_LINE.search(line)]
    assert not leaked, f"emulator access log on the console: {leaked[:5]}"


def stop_and_assert_nothing_left(launcher: Launcher, signum: int, children: list[psutil.Process]) -> None:
    launcher.process.send_signal(signum)
    assert launcher.process.wait(60) == 0, launcher.output()
    gone, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, f"still running after the launcher stopped: {alive}"
    assert len(gone) == len(children)


@pytest.mark.integration
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_moto_launcher_serves_the_whole_pipeline_and_stops_everything(signum: int, launch: type[Launcher]) -> None:
    ports = free_ports("moto")
    launcher = launch(ports | {"API_TOKEN": "s3cret-token"})
    launcher.wait_for(READY)
    output = launcher.output()
    assert "s3cret-token" in output
    assert f"http://127.0.0.1:{ports['API_PORT']}" in output
    assert "local AWS:          moto" in output
    children = launcher.children()
    assert len(children) == 3, "moto, the API and the consumer"
    exercise(launcher, ports, "EMULATOR_PORT")
    logs = emulator_logs(launcher)
    assert set(logs) == {"moto"}
    assert logs["moto"].name == "moto.log"
    assert ACCESS_LOG_LINE.search(logs["moto"].read_text()), "moto's access log is in the file the banner names"
    assert_no_access_log_on_the_console(launcher)
    stop_and_assert_nothing_left(launcher, signum, children)


@pytest.mark.tools
def test_fast_launcher_serves_the_whole_pipeline_and_ctrl_c_stops_everything(
    launch: type[Launcher], tmp_path: Path
) -> None:
    require_fast_backend()
    ports = free_ports("fast")
    launcher = launch(ports | {"LOCAL_AWS": "fast", "API_TOKEN": "fast-token"})
    launcher.wait_for(READY)
    output = launcher.output()
    assert "local AWS:          fast (LOCAL_AWS=fast)" in output
    for server, variable in (("ElasticMQ", "SQS_PORT"), ("gofakes3", "S3_PORT"), ("moto", "EMULATOR_PORT")):
        assert re.search(rf"{server}\s+http://127\.0\.0\.1:{ports[variable]}\s", output), f"{server} in the banner"
    assert f"queue:              http://127.0.0.1:{ports['SQS_PORT']}/" in output
    children = launcher.children()
    commands = [" ".join(child.cmdline()) for child in children]
    for program in ("moto.server", "gofakes3", "org.elasticmq.server.Main", "api_service", "consumer_service"):
        assert sum(program in command for command in commands) == 1, f"one {program} among {commands}"
    assert len(children) == 5
    exercise(launcher, ports, "S3_PORT")
    logs = emulator_logs(launcher)
    assert set(logs) == {"moto", "ElasticMQ", "gofakes3"}
    assert all(path.is_file() and tmp_path in path.parents for path in logs.values()), logs
    assert "CREATE OBJECT" in logs["gofakes3"].read_text(), "gofakes3 logs the consumer's writes to its file"
    assert "ElasticMQ server" in logs["ElasticMQ"].read_text()
    assert_no_access_log_on_the_console(launcher)
    began = time.monotonic()
    stop_and_assert_nothing_left(launcher, signal.SIGINT, children)  # the JVM included
    assert time.monotonic() - began < 20, "Ctrl-C does not wait for ElasticMQ's long polls to end"
    for name, port in ports.items():
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", int(port))) != 0, f"{name} still answers"


@pytest.mark.integration
@pytest.mark.parametrize(
    ("local_aws", "variable"),
    [("moto", "API_PORT"), ("moto", "EMULATOR_PORT"), ("fast", "CONSUMER_PORT"), ("fast", "SQS_PORT"),
     ("fast", "S3_PORT")],
)  # fmt: skip
def test_a_taken_port_names_the_variable_to_change(local_aws: str, variable: str) -> None:
    ports = free_ports(local_aws)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        ports[variable] = str(taken.getsockname()[1])
        completed = subprocess.run(
            [sys.executable, "-m", "devstack"], cwd=REPO_ROOT, env={**os.environ, **ports, "LOCAL_AWS": local_aws},
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    assert completed.returncode == 1
    assert f"127.0.0.1:{ports[variable]} is in use: set {variable} to a free port" in completed.stderr
    assert READY not in completed.stdout
    assert "Traceback" not in completed.stderr


@pytest.mark.integration
def test_launcher_generates_a_token_when_none_is_given(launch: type[Launcher]) -> None:
    launcher = launch(free_ports("moto"))
    launcher.wait_for(READY)
    token_line = launcher.banner_line("token:")
    assert "generated" in token_line
    assert len(token_line.split()[1]) >= 24
    launcher.process.send_signal(signal.SIGTERM)
    assert launcher.process.wait(60) == 0


@pytest.mark.integration
@pytest.mark.parametrize(
    ("env", "expected"),
    [({"API_PORT": "eighty"}, "API_PORT"), ({"LOCAL_AWS": "quick"}, "LOCAL_AWS='quick': choose moto or fast"),
     ({"LOCAL_AWS": "fast", "S3_PORT": "99999"}, "S3_PORT")],
)  # fmt: skip
def test_launcher_rejects_bad_settings(env: dict[str, str], expected: str) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "devstack"], env={**os.environ, **env},
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert completed.returncode != 0
    assert expected in completed.stderr


@pytest.mark.integration
def test_fast_without_its_tools_says_how_to_install_them(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "devstack"], cwd=REPO_ROOT,
        env={**os.environ, **free_ports("fast"), "LOCAL_AWS": "fast", "EMAIL_INGEST_TOOLS_DIR": str(tmp_path)},
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert completed.returncode == 1
    assert "ElasticMQ is not installed" in completed.stderr
    assert "gofakes3 is not installed" in completed.stderr
    assert "`LOCAL_AWS=fast make run` installs them" in completed.stderr


@pytest.mark.integration
def test_make_run_passes_the_storage_layout_and_batch_settings_through(launch: type[Launcher]) -> None:
    ports = free_ports("moto")
    launcher = launch(ports | {"STORAGE_LAYOUT": "batched", "BATCH_MAX_SECONDS": "1", "BATCH_MAX_EMAILS": "7"})
    launcher.wait_for(READY)
    assert launcher.banner_line("stored in:").startswith("stored in:          s3://email-ingest-local/batches/")
    assert "written every 1 s" in launcher.banner_line("stored in:")
    completed = subprocess.run(shlex.split(launcher.banner_line("curl ")), capture_output=True, text=True,
                               timeout=30, check=False)  # fmt: skip
    email_id = re.search(r'"email_id":"([^"]+)"', completed.stdout)
    assert email_id is not None, completed.stdout + completed.stderr
    s3 = f"http://127.0.0.1:{ports['EMULATOR_PORT']}"
    # BATCH_MAX_SECONDS=1 reached the consumer: the lone email's batch is written a second later.
    wait_for(lambda: any(key.startswith("batches/dt=") for key in stored_keys(s3, "email-ingest-local", "batches/")),
             timeout=15, interval=0.1, message="the batch in the bucket")  # fmt: skip
    assert stored_keys(s3, "email-ingest-local", "emails/") == set()
    consumer_log = launcher.output()
    assert '"storage_layout":"batched"' in consumer_log
    assert re.search(r'"emails":1,.*"reason":"max_seconds"', consumer_log), "BATCH_MAX_SECONDS reached the consumer"
    objects_command = _line_after(launcher, "See what was stored")
    assert objects_command.startswith("STORAGE_LAYOUT=batched ")
    objects = run_printed(objects_command)
    assert objects.returncode == 0, objects.stdout + objects.stderr
    assert "a batch of 1 email(s)" in objects.stdout and email_id.group(1) in objects.stdout
    stop_and_assert_nothing_left(launcher, signal.SIGINT, launcher.children())
