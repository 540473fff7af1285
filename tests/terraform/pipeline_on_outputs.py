"""The API and the consumer run on what Terraform made (issue 25, section 5).

While the email-ingest example is applied to the patched moto, the services' settings are taken from
`terraform output -json` and nothing else: its `helm_values` output is rendered by the chart, as the deploy job does,
and each process gets its ConfigMap as its environment (what `envFrom` gives the pod). The only additions are
what differs between a pod in AWS and a process here: AWS_ENDPOINT_URL, the certificate moto serves TLS with
(AWS_CA_BUNDLE: the bucket denies plain HTTP) and test credentials (the pod's IRSA role),
a loopback address and free ports, and a poison retry window of seconds instead of 30 minutes, so that the
redrive policy's receive count is reached while the test waits. The tokens are read from SSM as an operator
would (`aws ssm get-parameter --with-decryption`): Terraform never sees them.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import yaml

from devstack.processes import LOOPBACK, ManagedProcess, ProcessFailed, free_port, python_module
from tests.aws_helpers import seed_payload, wait_for
from tests.support.api import post
from tests.terraform.applied import PatchedMoto
from tests.terraform.real_provider import Provider, terraform
from tests.tooling import REPO_ROOT, TOOLS_DIR, require_tool, run_tool

CHART = REPO_ROOT / "helm" / "email-ingest"
NAMESPACE = "email-ingest"  # the module's default var.namespace, which the IRSA trust policies name
POISON_RETRY_WINDOW_SECONDS = "4"
SUBJECT, SENDER = "Terraform made this", "pipeline@example.com"


@dataclass
class PipelineRun:
    """What the services did on Terraform's resources."""

    outputs: dict[str, Any]
    values: dict[str, Any]
    api_env: dict[str, str]
    consumer_env: dict[str, str]
    posted: dict[str, int]  # which token -> the API's status
    stored: dict[str, dict[str, Any]]  # which token -> the stored object
    client_name: str
    poison_body: str
    dead_letters: list[str]
    queue_left: int


def rendered_configmaps(values_yaml: str, workdir: Path) -> tuple[dict[str, str], dict[str, str]]:
    """The api's and the consumer's ConfigMap data, from `helm template` of the chart with these values."""
    values_file = workdir / "values.generated.yaml"
    values_file.write_text(values_yaml)
    helm = require_tool("helm")
    result = run_tool(
        [helm, "template", "email-ingest", str(CHART), "--namespace", NAMESPACE, "-f", str(values_file)],
        env={"HELM_PLUGINS": str(TOOLS_DIR / "helm-plugins")},
    )
    configmaps = [doc for doc in yaml.safe_load_all(result.stdout) if doc and doc["kind"] == "ConfigMap"]
    api = [doc["data"] for doc in configmaps if "API_PORT" in doc.get("data", {})]
    consumer = [doc["data"] for doc in configmaps if "CONSUMER_PORT" in doc.get("data", {})]
    assert len(api) == 1 and len(consumer) == 1, [doc["metadata"]["name"] for doc in configmaps]
    return api[0], consumer[0]


def process_env(configmap: dict[str, str], moto: PatchedMoto, local: dict[str, str]) -> dict[str, str]:
    inherited = {key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "API_", "CONSUMER_"))}
    return {**inherited, **moto.env(), **configmap, **local}


def stored_object(s3: Any, bucket: str, prefix: str, content: str) -> dict[str, Any] | None:
    """The stored email whose content is `content`, or None while it is not in the bucket."""
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            document: dict[str, Any] = json.loads(s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read())
            if document.get("email_content") == content:
                return {**document, "_key": item["Key"]}
    return None


def run_pipeline(root: Path, moto: PatchedMoto, provider: Provider, env: dict[str, str]) -> PipelineRun:
    """Runs the services on `root`'s outputs (the email-ingest example, applied) and returns what they did."""
    output = terraform(root, "output", "-json", "-no-color", provider=provider, env=env, timeout=120)
    if output.returncode != 0:
        raise RuntimeError(output.describe())
    outputs: dict[str, Any] = json.loads(output.stdout)
    values_yaml = outputs["helm_values"]["value"]
    values: dict[str, Any] = yaml.safe_load(values_yaml)
    api_config, consumer_config = rendered_configmaps(values_yaml, root)
    aws = values["aws"]

    api_port, consumer_port = free_port(), free_port()
    api_env = process_env(api_config, moto, {"API_HOST": LOOPBACK, "API_PORT": str(api_port)})
    consumer_env = process_env(
        consumer_config,
        moto,
        {
            "CONSUMER_HOST": LOOPBACK,
            "CONSUMER_PORT": str(consumer_port),
            "POISON_RETRY_WINDOW_SECONDS": POISON_RETRY_WINDOW_SECONDS,
        },
    )
    ssm = moto.client("ssm")
    token = ssm.get_parameter(Name=aws["tokenParameterName"], WithDecryption=True)["Parameter"]["Value"]
    clients = ssm.get_parameters_by_path(Path=aws["tokenParameterPath"], WithDecryption=True)["Parameters"]
    assert clients, f"no client token under {aws['tokenParameterPath']}"
    client_name = clients[0]["Name"].rsplit("/", 1)[-1]
    client_token = clients[0]["Value"]

    api = ManagedProcess("api", python_module("api_service"), env=api_env, log_path=root / "api.log", cwd=REPO_ROOT)
    consumer = ManagedProcess(
        "consumer", python_module("consumer_service"), env=consumer_env, log_path=root / "consumer.log", cwd=REPO_ROOT
    )
    s3 = moto.client("s3")
    sqs = moto.client("sqs")
    processes = [api, consumer]
    try:
        for process, port in ((api, api_port), (consumer, consumer_port)):
            process.start()
            try:
                process.wait_until(f"http://{LOOPBACK}:{port}/readyz", timeout=60)
            except ProcessFailed as exc:
                log = process.log_path.read_text(errors="replace")[-4000:] if process.log_path else ""
                raise ProcessFailed(f"{exc}\n--- its log (end)\n{log}") from exc
        url = f"http://{LOOPBACK}:{api_port}/api/email"
        contents = {"token": f"with the token {uuid.uuid4()}", "client": f"from a client {uuid.uuid4()}"}
        secrets = {"token": token, "client": client_token}
        posted = {
            which: post(
                url, seed_payload(secrets[which], email_subject=SUBJECT, email_sender=SENDER, email_content=content)
            )[0]
            for which, content in contents.items()
        }
        prefix = consumer_config.get("S3_KEY_PREFIX", "")
        stored: dict[str, dict[str, Any]] = {}
        for which, content in contents.items():
            if posted[which] == 200:
                stored[which] = wait_for(
                    partial(stored_object, s3, aws["s3Bucket"], prefix, content),
                    timeout=60,
                    interval=0.2,
                    message=f"the email posted {which} stored in {aws['s3Bucket']}",
                )

        poison_body = json.dumps({"not": "an envelope", "id": str(uuid.uuid4())})
        sqs.send_message(QueueUrl=aws["sqsQueueUrl"], MessageBody=poison_body)

        def dead_letters() -> list[str]:
            answer = sqs.receive_message(QueueUrl=aws["sqsDlqUrl"], MaxNumberOfMessages=10, WaitTimeSeconds=1)
            return [message["Body"] for message in answer.get("Messages", [])]

        letters = wait_for(dead_letters, timeout=120, interval=0.5, message="the poison message in Terraform's DLQ")
        queue_left = int(
            sqs.get_queue_attributes(
                QueueUrl=aws["sqsQueueUrl"],
                AttributeNames=["ApproximateNumberOfMessages"],
            )["Attributes"]["ApproximateNumberOfMessages"]
        )
    finally:
        for process in processes:
            process.stop(20)
    return PipelineRun(
        outputs, values, api_env, consumer_env, posted, stored, client_name, poison_body, letters, queue_left
    )
