"""The API as a real process: start-up validation and the SIGTERM drain."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from devstack.bootstrap import StackNames
from devstack.emulator import MotoServer
from devstack.stack import DevStack, StackConfig
from tests.aws_helpers import receive_emails, seed_payload
from tests.support.api import post


@pytest.mark.integration
def test_bad_configuration_exits_2_naming_every_variable() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "api_service"],
        env={"PATH": "/usr/bin:/bin", "API_PORT": "http", "PUBLISH_LINGER_MS": "-1", "SQS_QUEUE_URL": "queue"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 2
    for variable in ("AWS_REGION", "SQS_QUEUE_URL", "TOKEN_PARAMETER_NAME", "API_PORT", "PUBLISH_LINGER_MS"):
        assert variable in completed.stderr


def test_sigterm_answers_every_accepted_request_and_exits_0(
    tmp_path: Path, stack_names: StackNames, moto_server: MotoServer
) -> None:
    # A long linger keeps requests waiting in the publisher when SIGTERM arrives.
    config = StackConfig(
        with_consumer=False,
        names=stack_names,
        log_dir=tmp_path,
        api_env={"PUBLISH_LINGER_MS": "300"},
        emulator_endpoint_url=moto_server.endpoint_url,
    )
    with DevStack(config) as stack:
        assert stack.api is not None
        results: list[tuple[int, dict[str, object] | None]] = []
        lock = threading.Lock()

        def client(index: int) -> None:
            outcome = post(f"{stack.api_url}/api/email", seed_payload(stack.token, email_content=f"c{index}"))
            with lock:
                results.append(outcome)

        threads = [threading.Thread(target=client, args=(index,)) for index in range(40)]
        for thread in threads:
            thread.start()
        time.sleep(0.15)
        stack.api.signal(signal.SIGTERM)
        for thread in threads:
            thread.join(60)
        assert stack.api.process is not None
        assert stack.api.process.wait(30) == 0
        assert len(results) == 40
        accepted = [str(body["message_id"]) for status, body in results if status == 200 and body]
        assert accepted, "requests in flight at SIGTERM are answered, not dropped"
        assert all(status in {200, 503, 0} for status, _ in results), results
        assert stack.resources is not None
        in_queue = receive_emails(stack.endpoint_url, stack.resources.queue_url, expected=len(accepted))
        assert sorted(message_id for message_id, _ in in_queue) == sorted(accepted)
        log = stack.api.log_text()
        assert '"event":"publisher_drained"' in log
        assert '"event":"stopped"' in log


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_idle_api_stops_promptly(tmp_path: Path, stack_names: StackNames, moto_server: MotoServer, signum: int) -> None:
    config = StackConfig(
        with_consumer=False, names=stack_names, log_dir=tmp_path, emulator_endpoint_url=moto_server.endpoint_url
    )
    with DevStack(config) as stack:
        assert stack.api is not None and stack.api.process is not None
        began = time.monotonic()
        stack.api.signal(signum)
        assert stack.api.process.wait(30) == 0
        assert time.monotonic() - began < 5
