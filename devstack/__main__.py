"""`make run`: the whole pipeline on 127.0.0.1 until Ctrl-C or SIGTERM.

Environment: LOCAL_AWS (moto, or fast: ElasticMQ and gofakes3 beside moto), API_PORT (8080), CONSUMER_PORT (8081),
EMULATOR_PORT (5000), SQS_PORT (9324) and S3_PORT (9000) with LOCAL_AWS=fast, API_TOKEN (generated when unset).
The local AWS servers log to files in a new temporary folder (the banner names them); the services to the console.
"""

from __future__ import annotations

import json
import shlex
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import FrameType

from devstack.elasticmq import ElasticMQError, install_problem
from devstack.gofakes3 import gofakes3_binary
from devstack.processes import ProcessFailed
from devstack.settings import DEFAULT_PORTS, batched_layout, stack_config_from_env, stored_prefix
from devstack.stack import DevStack, StackConfig

READY_LINE = "email-ingest is ready (Ctrl-C to stop)"


def curl_example(api_url: str, token: str) -> str:
    payload = {
        "data": {
            "email_subject": "Happy new year!",
            "email_sender": "John doe",
            "email_timestream": str(int(time.time())),
            "email_content": "Just want to say... Happy new year!!!",
        },
        "token": token,
    }
    return (
        f"curl -sS -X POST {api_url}/api/email -H 'Content-Type: application/json' "
        f"-d {shlex.quote(json.dumps(payload))}"
    )


def aws_banner(stack: DevStack) -> str:
    """Which local AWS runs, where, and where each server logs."""
    logs = stack.emulator_logs()

    def line(services: str, server: str, url: str) -> str:
        log = f"   log: {logs[server]}" if server in logs else ""
        return f"  {services:<13} {server:<10} {url}{log}\n"

    if stack.config.local_aws == "fast":
        return (
            "local AWS:          fast (LOCAL_AWS=fast)\n"
            + line("SQS", "ElasticMQ", stack.sqs_endpoint_url)
            + line("S3", "gofakes3", stack.s3_endpoint_url)
            + line("SSM", "moto", stack.endpoint_url)
        )
    return (
        "local AWS:          moto, nothing to install; it carries ~35 requests/s, so load-test with\n"
        "                    LOCAL_AWS=fast make run (ElasticMQ and gofakes3; see loadtest/README.md)\n"
        + line("SQS, S3, SSM", "moto", stack.endpoint_url)
    )


def stored_where(stack: DevStack) -> str:
    """Where the consumer stores (make run passes STORAGE_LAYOUT and BATCH_* through from the environment)."""
    resources = stack.resources
    assert resources is not None
    environment = stack.consumer_environment()
    where = f"s3://{resources.bucket}/{stored_prefix(environment)}"
    if batched_layout(environment):
        seconds = environment.get("BATCH_MAX_SECONDS") or "60"
        return f"{where}   (STORAGE_LAYOUT=batched: gzip NDJSON, written every {seconds} s)"
    return where


def objects_command(stack: DevStack) -> str:
    """`make objects` with the variables that differ from their defaults (it finds S3 the way `make run` does)."""
    settings: list[str] = []
    if batched_layout(stack.consumer_environment()):
        settings.append("STORAGE_LAYOUT=batched")
    if stack.config.local_aws == "fast":
        settings.append("LOCAL_AWS=fast")
        if stack.config.s3_port != DEFAULT_PORTS["S3_PORT"]:
            settings.append(f"S3_PORT={stack.config.s3_port}")
    elif stack.config.emulator_port != DEFAULT_PORTS["EMULATOR_PORT"]:
        settings.append(f"EMULATOR_PORT={stack.config.emulator_port}")
    return " ".join([*settings, "make objects"])


def banner(stack: DevStack) -> str:
    resources = stack.resources
    assert resources is not None
    generated = "" if stack.config.token else " (generated; set API_TOKEN to choose one)"
    return (
        f"\n{aws_banner(stack)}"
        f"API:                {stack.api_url}   (/healthz /readyz /metrics /openapi.json)\n"
        f"consumer:           {stack.consumer_url}   (/healthz /readyz /metrics)\n"
        f"queue:              {resources.queue_url}\n"
        f"stored in:          {stored_where(stack)}\n"
        f"token:              {stack.token}{generated}\n"
        f"logs:               the API's and the consumer's below; the local AWS's in the files above\n\n"
        f"Try it:\n  {curl_example(stack.api_url, stack.token)}\n\n"
        f"See what was stored (lists the keys, prints the newest; add KEY=<key> for another):\n"
        f"  {objects_command(stack)}\n"
    )


def _watch(stack: DevStack, stopping: threading.Event) -> int:
    """Until a signal (0) or until a service exits on its own (1)."""
    while not stopping.wait(0.5):
        for process in (stack.api, stack.consumer):
            if process is not None and not process.running():
                print(f"devstack: {process.name} exited with {process.returncode()}", file=sys.stderr)
                return 1
    return 0


def missing_tools(config: StackConfig, *, program: str) -> str | None:
    """What the chosen local AWS needs and is not installed, said with how to install it; None when ready."""
    if config.local_aws != "fast":
        return None
    missing = [problem for problem in (install_problem(),) if problem]
    if not gofakes3_binary().is_file():
        missing.append(f"gofakes3 is not installed ({gofakes3_binary()} is missing)")
    if not missing:
        return None
    return (
        f"{program}: LOCAL_AWS=fast: " + "; ".join(missing) + ".\n"
        "  `LOCAL_AWS=fast make run` installs them (scripts/tools/install-elasticmq.sh, install-gofakes3.sh)."
    )


def main() -> int:
    config = stack_config_from_env("devstack")
    problem = missing_tools(config, program="devstack")
    if problem:
        print(problem, file=sys.stderr)
        return 1
    config.emulator_log_dir = Path(tempfile.mkdtemp(prefix="email-ingest-run-"))
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
    stack = DevStack(config)
    try:
        stack.start()
        starting.clear()
        print(banner(stack), flush=True)
        print(READY_LINE, flush=True)
    except (ProcessFailed, ElasticMQError) as exc:
        print(f"devstack: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM while starting: stopped as asked
        return 0
    else:
        return _watch(stack, stopping)
    finally:
        starting.clear()  # cleaning up is not interrupted by a second signal
        print(f"devstack: stopping (the local AWS's logs stay in {config.emulator_log_dir})", file=sys.stderr)
        stack.stop()


if __name__ == "__main__":
    sys.exit(main())
