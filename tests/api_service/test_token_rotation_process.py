"""Token rotation across API processes: every pod accepts the same tokens, whenever it started.

Two real API processes against moto's SSM; one starts after the rotation. Both accept the new token at once (the
pod started before it learns it through the early refresh, long before its regular refresh), both accept the
old one until SSM's LastModifiedDate of the new version plus the grace, and both refuse it afterwards.
"""

from __future__ import annotations

import time
from pathlib import Path

from devstack.bootstrap import StackNames, emulator_client
from devstack.emulator import MotoServer
from devstack.metrics_text import metric_value, scrape
from devstack.processes import LOOPBACK, ManagedProcess, free_port, python_module
from devstack.stack import DevStack, StackConfig
from tests.aws_helpers import seed_payload
from tests.support.api import post

GRACE_SECONDS = 15.0  # long enough to start a second API inside it on a loaded machine, short enough to wait out


def status(api_url: str, token: str) -> int:
    return post(f"{api_url}/api/email", seed_payload(token))[0]


def test_every_pod_accepts_the_same_tokens_through_a_rotation(
    tmp_path: Path, stack_names: StackNames, moto_server: MotoServer
) -> None:
    old, new = "old-token-value-0123456789", "new-token-value-9876543210"
    config = StackConfig(
        with_consumer=False,
        names=stack_names,
        log_dir=tmp_path / "a",
        token=old,
        # The regular refresh is far away: the pod started before the rotation can only learn it early.
        api_env={"TOKEN_ROTATION_GRACE_SECONDS": str(GRACE_SECONDS), "TOKEN_REFRESH_SECONDS": "300"},
        emulator_endpoint_url=moto_server.endpoint_url,
    )
    with DevStack(config) as stack:
        assert stack.resources is not None
        pod_a = stack.api_url
        assert status(pod_a, old) == 200

        ssm = emulator_client("ssm", stack.endpoint_url)
        name = stack.resources.token_parameter
        ssm.put_parameter(Name=name, Value=new, Type="SecureString", Overwrite=True)
        history = ssm.get_parameter_history(Name=name, WithDecryption=True)["Parameters"]
        assert [version["Value"] for version in history][-2:] == [old, new], "moto decrypts the history"
        old_ends = history[-1]["LastModifiedDate"].timestamp() + GRACE_SECONDS

        # The first request with the new token is accepted: 401 is final for a client.
        assert status(pod_a, new) == 200
        assert status(pod_a, old) == 200
        early = metric_value(scrape(pod_a), "email_ingest_token_early_refreshes_total", {"outcome": "success"})
        assert early == 1

        port_b = free_port()
        pod_b = f"http://{LOOPBACK}:{port_b}"
        api_b = ManagedProcess(
            "api-b",
            python_module("api_service"),
            env={**stack.api_environment(), "API_PORT": str(port_b)},
            log_path=tmp_path / "b" / "api.log",
        )
        api_b.start()
        try:
            api_b.wait_until(f"{pod_b}/readyz")
            answers = {(pod, token): status(pod, token) for pod in (pod_a, pod_b) for token in (old, new)}
            checked_at = time.time()
            assert checked_at < old_ends, "the machine was too slow to check inside the grace period"
            assert set(answers.values()) == {200}, answers

            # Past the grace both refuse the old token, and never before it: poll until both do.
            refused: dict[str, float] = {}
            deadline = old_ends + 20
            while len(refused) < 2 and time.time() < deadline:
                for pod in (pod_a, pod_b):
                    if pod not in refused:
                        sent_at = time.time()
                        code = status(pod, old)
                        assert code in {200, 401}, code
                        if code == 401:
                            assert sent_at >= old_ends - 0.5, (
                                f"{pod} refused the old token {old_ends - sent_at:.1f} s early"
                            )
                            refused[pod] = sent_at
                time.sleep(0.25)
            assert set(refused) == {pod_a, pod_b}, "both pods refuse the old token after the grace"
            assert status(pod_a, new) == 200
            assert status(pod_b, new) == 200
            regular = metric_value(scrape(pod_b), "email_ingest_token_refreshes_total", {"outcome": "success"})
            assert regular >= 1
        finally:
            api_b.stop()
        for log in (stack.api.log_text() if stack.api else "", api_b.log_text()):
            assert '"event":"token_loaded"' in log
            assert old not in log and new not in log, "tokens are never logged"
