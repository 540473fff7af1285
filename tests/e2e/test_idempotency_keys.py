"""Idempotency-Keys end to end, in both layouts: the API and the consumer as processes against moto.

- Two clients (`shop`, `billing`) that send the same key with different emails: two ids, both emails stored, each
  with its own content and client (before, both got one id and the consumer took the second for a retry of the
  first and deleted it: an acknowledged email lost).
- One client sending one email twice under one key: one id, one stored email.
- One client sending two different emails under one key: one id (the API cannot tell), both stored, the conflict
  counted by the consumer (`email_ingest_consumer_idempotency_conflicts_total`).
"""

from __future__ import annotations

import gzip
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from devstack.bootstrap import StackNames, emulator_client
from devstack.emulator import MotoServer
from devstack.metrics_text import metric_value, scrape
from devstack.stack import DevStack, StackConfig
from tests.aws_helpers import queue_depth, seed_payload, stored_keys, wait_for

SHOP, BILLING = "shop-token-1", "billing-token-1"


def post(api_url: str, token: str, key: str, subject: str) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{api_url}/api/email",
        data=json.dumps(seed_payload(None, email_subject=subject)).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}", "Idempotency-Key": key},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200
        answer: dict[str, Any] = json.loads(response.read())
        return answer


def stored_documents(endpoint_url: str, bucket: str, layout: str) -> list[dict[str, Any]]:
    """Every stored document: one per object (per-email), one per line (batched)."""
    s3 = emulator_client("s3", endpoint_url)
    prefix = "emails/" if layout == "per-email" else "batches/"
    documents = []
    for key in sorted(stored_keys(endpoint_url, bucket, prefix)):
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        if layout == "per-email":
            documents.append(json.loads(body))
        else:
            documents.extend(json.loads(line) for line in gzip.decompress(body).splitlines())
    return documents


@pytest.mark.parametrize("layout", ["per-email", "batched"])
def test_keys_are_scoped_by_client_and_a_conflict_loses_nothing(
    tmp_path: Path, stack_names: StackNames, moto_server: MotoServer, layout: str
) -> None:
    path = stack_names.token_parameter.rsplit("/", 1)[0] + "/clients"
    ssm = emulator_client("ssm", moto_server.endpoint_url)
    ssm.put_parameter(Name=f"{path}/shop", Value=SHOP, Type="SecureString")
    ssm.put_parameter(Name=f"{path}/billing", Value=BILLING, Type="SecureString")
    consumer_env = {"SQS_WAIT_TIME_SECONDS": "1", "STORAGE_LAYOUT": layout, "BATCH_MAX_SECONDS": "5"}
    config = StackConfig(
        names=stack_names,
        log_dir=tmp_path,
        emulator_endpoint_url=moto_server.endpoint_url,
        api_env={"TOKEN_PARAMETER_PATH": path},
        consumer_env=consumer_env,
    )
    with DevStack(config) as stack:
        api = stack.api_url
        from_shop = post(api, SHOP, "order-1001", "shop's order 1001")
        from_billing = post(api, BILLING, "order-1001", "billing's order 1001")
        assert from_shop["email_id"] != from_billing["email_id"], "two clients never share an id"

        retried = [post(api, SHOP, "order-1002", "shop's order 1002") for _ in range(2)]
        assert retried[0]["email_id"] == retried[1]["email_id"], "a client's retry maps to its one email"

        first = post(api, SHOP, "order-1003", "the first email under order-1003")
        second = post(api, SHOP, "order-1003", "another email under order-1003")
        assert first["email_id"] == second["email_id"], "the API cannot tell a conflict from a retry"

        resources = stack.resources
        assert resources is not None

        def settled() -> bool:
            return (
                queue_depth(stack.endpoint_url, resources.queue_url) == (0, 0)
                and len(
                    {
                        (d["email_id"], d["email_subject"])
                        for d in stored_documents(stack.endpoint_url, resources.bucket, layout)
                    }
                )
                >= 5
            )

        wait_for(settled, timeout=90, interval=0.5, message="the consumer to store every acknowledged email")
        documents = stored_documents(stack.endpoint_url, resources.bucket, layout)
        # Readers deduplicate by id and content (the catalog's emails_deduplicated view): a redelivery collapses,
        # a conflict does not.
        distinct = {(d["email_id"], d["client"], d["email_subject"]) for d in documents}
        assert distinct == {
            (from_shop["email_id"], "shop", "shop's order 1001"),
            (from_billing["email_id"], "billing", "billing's order 1001"),
            (retried[0]["email_id"], "shop", "shop's order 1002"),
            (first["email_id"], "shop", "the first email under order-1003"),
            (first["email_id"], "shop", "another email under order-1003"),
        }
        if layout == "per-email":
            assert len(documents) == 5, "the retry is one object"
            keys = stored_keys(stack.endpoint_url, resources.bucket, "emails/")
            conflict_keys = [key for key in keys if ".conflict-" in key]
            assert len(conflict_keys) == 1 and conflict_keys[0].split("/")[-1].startswith(first["email_id"])
        assert metric_value(scrape(stack.consumer_url), "email_ingest_consumer_idempotency_conflicts_total") == 1
