"""`make run`: the whole pipeline on 127.0.0.1 until Ctrl-C or SIGTERM.

Environment: API_PORT (8080), CONSUMER_PORT (8081), EMULATOR_PORT (5000), API_TOKEN (generated when unset).
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import sys
import threading
import time
from types import FrameType

from devstack.processes import ProcessFailed, port_from_env
from devstack.stack import LocalStack, StackConfig


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


def main() -> int:
    config = StackConfig(
        api_port=port_from_env("API_PORT", 8080, program="devstack"),
        consumer_port=port_from_env("CONSUMER_PORT", 8081, program="devstack"),
        emulator_port=port_from_env("EMULATOR_PORT", 5000, program="devstack"),
        token=os.environ.get("API_TOKEN") or None,
    )
    stopping = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    stack = LocalStack(config)
    try:
        stack.start()
    except ProcessFailed as exc:
        print(f"devstack: {exc}", file=sys.stderr)
        return 1
    try:
        resources = stack.resources
        assert resources is not None
        generated = "" if config.token else " (generated; set API_TOKEN to choose one)"
        print(
            f"\nlocal AWS (moto):   {stack.endpoint_url}\n"
            f"API:                {stack.api_url}   (/healthz /readyz /metrics /openapi.json)\n"
            f"consumer:           {stack.consumer_url}   (/healthz /readyz /metrics)\n"
            f"queue:              {resources.queue_url}\n"
            f"bucket:             s3://{resources.bucket}/emails/\n"
            f"token:              {stack.token}{generated}\n\n"
            f"Try it:\n  {curl_example(stack.api_url, stack.token)}\n\n"
            f"List what was stored:\n  AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing "
            f"aws --endpoint-url {stack.endpoint_url} s3 ls --recursive s3://{resources.bucket}/\n",
            flush=True,
        )
        print("email-ingest is ready (Ctrl-C to stop)", flush=True)
        while not stopping.wait(0.5):
            for process in (stack.api, stack.consumer):
                if process is not None and not process.running():
                    print(f"devstack: {process.name} exited with {process.returncode()}", file=sys.stderr)
                    return 1
        return 0
    finally:
        print("devstack: stopping", file=sys.stderr, flush=True)
        stack.stop()


if __name__ == "__main__":
    sys.exit(main())
