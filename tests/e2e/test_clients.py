"""Clients end to end: one token per client under TOKEN_PARAMETER_PATH beside the single token, against moto.

The API and the consumer run as processes. Two clients and the single token (`default`) send; one client passes
its own rate limit and gets 429 while the other is served; one client's token is rotated; one client is revoked by
deleting its parameter and refused long before the regular refresh (through the early refresh an unknown token
triggers). The client's name is in every stored object, in the API's log lines and in its metrics, and a
revoked client's series are gone.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

from devstack.bootstrap import StackNames, emulator_client
from devstack.emulator import MotoServer
from devstack.metrics_text import metric_value, scrape
from devstack.stack import DevStack, StackConfig
from tests.aws_helpers import queue_depth, seed_payload, stored_objects, wait_for

ACME_LIMITED = '{"token": "acme-token-1", "rate_limit_rps": 0.001, "rate_limit_burst": 3}'  # 3, then 1 per 1000 s


def send(api_url: str, token: str, subject: str) -> tuple[int, dict[str, str], dict[str, Any]]:
    request = urllib.request.Request(
        f"{api_url}/api/email",
        data=json.dumps(seed_payload(token, email_subject=subject)).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read())


def test_clients_are_told_apart_limited_rotated_revoked_and_named_in_storage_and_metrics(
    tmp_path: Path, stack_names: StackNames, moto_server: MotoServer
) -> None:
    path = stack_names.token_parameter.rsplit("/", 1)[0] + "/clients"
    ssm = emulator_client("ssm", moto_server.endpoint_url)
    ssm.put_parameter(Name=f"{path}/acme", Value=ACME_LIMITED, Type="SecureString")
    ssm.put_parameter(Name=f"{path}/globex", Value="globex-token-1", Type="SecureString")
    config = StackConfig(
        names=stack_names,
        log_dir=tmp_path,
        token="single-token-value",
        emulator_endpoint_url=moto_server.endpoint_url,
        api_env={
            "TOKEN_PARAMETER_PATH": path,
            # The regular refresh is far away: whatever this test sees, the early refresh did.
            "TOKEN_REFRESH_SECONDS": "300",
            "TOKEN_EARLY_REFRESH_SECONDS": "1",
            "TOKEN_ROTATION_GRACE_SECONDS": "600",
        },
        consumer_env={"SQS_WAIT_TIME_SECONDS": "1"},
    )
    accepted: dict[str, str] = {}  # email_id -> the client that sent it
    with DevStack(config) as stack:
        api = stack.api_url

        def sent(token: str, client: str, expected: int) -> dict[str, str]:
            status, headers, body = send(api, token, f"from {client}")
            assert status == expected, (client, body)
            if status == 200:
                accepted[body["email_id"]] = client
            return headers

        sent("single-token-value", "default", 200)
        for _ in range(3):
            sent("acme-token-1", "acme", 200)
        headers = sent("acme-token-1", "acme", 429)  # over its own limit...
        assert 1 <= int(headers["Retry-After"]) <= 1000
        for _ in range(10):
            sent("globex-token-1", "globex", 200)  # ...while the other client is served
        metrics = scrape(api)
        assert (
            metric_value(metrics, "email_ingest_api_rejections_total", {"reason": "rate_limited", "client": "acme"})
            == 1
        )
        assert metric_value(metrics, "email_ingest_api_requests_total", {"code": "429", "client": "acme"}) == 1
        assert metric_value(metrics, "email_ingest_api_requests_total", {"code": "429", "client": "globex"}) == 0
        assert metric_value(metrics, "email_ingest_api_emails_accepted_total", {"client": "globex"}) == 10
        assert metric_value(metrics, "email_ingest_token_clients") == 3

        # Rotation: the new token is accepted at once (an early refresh), the old one for the grace.
        ssm.put_parameter(Name=f"{path}/globex", Value="globex-token-2", Type="SecureString", Overwrite=True)
        sent("globex-token-2", "globex", 200)
        sent("globex-token-1", "globex", 200)

        # Revocation: deleting the parameter refuses the token at the next load; any unknown token brings it on.
        ssm.delete_parameter(Name=f"{path}/acme")

        def acme_refused() -> bool:
            send(api, "somebody-elses-token", "unknown")  # 401, and an early refresh (at most one a second)
            return send(api, "acme-token-1", "acme")[0] == 401

        wait_for(acme_refused, timeout=15, interval=0.5, message="the deleted client's token to be refused")
        sent("globex-token-2", "globex", 200)
        sent("single-token-value", "default", 200)
        metrics = scrape(api)
        assert metric_value(metrics, "email_ingest_token_clients") == 2
        assert metric_value(metrics, "email_ingest_api_emails_accepted_total", {"client": "acme"}) == 0, (
            "a revoked client's series are removed: the label stays bounded"
        )
        assert metric_value(metrics, "email_ingest_api_emails_accepted_total", {"client": "globex"}) == 13
        regular = metric_value(metrics, "email_ingest_token_refreshes_total", {"outcome": "success"})
        early = metric_value(metrics, "email_ingest_token_early_refreshes_total", {"outcome": "success"})
        assert regular == early + 1, "every load after the first was an early one"

        resources = stack.resources
        assert resources is not None
        wait_for(lambda: queue_depth(stack.endpoint_url, resources.queue_url) == (0, 0)
                 and len(stored_objects(stack.endpoint_url, resources.bucket)) >= len(accepted),
                 timeout=60, interval=0.5, message="the consumer to store every accepted email")  # fmt: skip
        stored = {
            document["email_id"]: document for document in stored_objects(stack.endpoint_url, resources.bucket).values()
        }
        assert stack.api is not None
        api_log = stack.api.log_text()

    assert {email_id: document["client"] for email_id, document in stored.items()} == accepted
    assert all(document["email_subject"] == f"from {document['client']}" for document in stored.values())
    assert Counter(accepted.values()) == {"default": 2, "acme": 3, "globex": 13}
    lines = [json.loads(line) for line in api_log.splitlines() if line.startswith("{")]
    requests = Counter((line["client"], line["status"]) for line in lines if line["event"] == "request")
    assert requests[("acme", 429)] >= 1  # the first, and any while the revocation was on its way
    assert requests[("globex", 200)] == 13
    assert requests[("unauthenticated", 401)] >= 2
    assert any(line["event"] == "clients_removed" and line["clients"] == ["acme"] for line in lines)
    assert any(line["event"] == "token_rotated" and line["client"] == "globex" for line in lines)
    for secret in ("single-token-value", "acme-token-1", "globex-token-1", "globex-token-2"):
        assert secret not in api_log, "tokens are never logged"
