"""`make run`'s launcher (python -m devstack): ready to take a POST, and Ctrl-C / SIGTERM stops it all."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from devstack.processes import free_port, http_status
from tests.aws_helpers import stored_keys, wait_for


def start_launcher(env_overrides: dict[str, str]) -> tuple[subprocess.Popen[str], list[str]]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    env.update(env_overrides)
    process = subprocess.Popen(
        [sys.executable, "-m", "devstack"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if "is ready" in line:
            return process, lines
    process.kill()
    raise AssertionError("the launcher never said it was ready:\n" + "\n".join(lines))


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_launcher_serves_the_whole_pipeline_and_stops_everything(signum: int, tmp_path: Path) -> None:
    ports = {"API_PORT": free_port(), "CONSUMER_PORT": free_port(), "EMULATOR_PORT": free_port()}
    process, lines = start_launcher({name: str(port) for name, port in ports.items()} | {"API_TOKEN": "s3cret-token"})
    children: list[psutil.Process] = []
    try:
        output = "\n".join(lines)
        assert "s3cret-token" in output
        assert f"http://127.0.0.1:{ports['API_PORT']}" in output
        assert http_status(f"http://127.0.0.1:{ports['API_PORT']}/readyz") == 200
        assert http_status(f"http://127.0.0.1:{ports['CONSUMER_PORT']}/readyz") == 200
        children = psutil.Process(process.pid).children(recursive=True)
        assert len(children) == 3, "moto, the API and the consumer"
        # The printed example must work as printed.
        curl_line = next(line.strip() for line in lines if line.strip().startswith("curl "))
        completed = subprocess.run(shlex.split(curl_line), capture_output=True, text=True, timeout=30, check=False)
        assert '"status":"success"' in completed.stdout, completed.stdout + completed.stderr
        email_id = re.search(r'"email_id":"([^"]+)"', completed.stdout)
        assert email_id is not None
        endpoint = f"http://127.0.0.1:{ports['EMULATOR_PORT']}"
        began = time.monotonic()
        wait_for(lambda: any(email_id.group(1) in key for key in stored_keys(endpoint, "email-ingest-local")),
                 timeout=10, interval=0.05, message="the email in the bucket")  # fmt: skip
        assert time.monotonic() - began < 3, "a POST shows up in the bucket within about a second"
    finally:
        process.send_signal(signum)
        assert process.wait(60) == 0
    gone, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, f"still running after the launcher stopped: {alive}"
    assert len(gone) == 3


def test_launcher_generates_a_token_when_none_is_given() -> None:
    ports = {"API_PORT": free_port(), "CONSUMER_PORT": free_port(), "EMULATOR_PORT": free_port()}
    process, lines = start_launcher({name: str(port) for name, port in ports.items()})
    try:
        token_line = next(line for line in lines if line.startswith("token:"))
        assert "generated" in token_line
        assert len(token_line.split()[1]) >= 24
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0


def test_launcher_rejects_a_bad_port() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "devstack"], env={**os.environ, "API_PORT": "eighty"},
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert completed.returncode != 0
    assert "API_PORT" in completed.stderr
