"""The API and the consumer on what Terraform made (issue 25, section 5): settings from `terraform output -json`
(its helm_values, rendered by the chart), a POST stored in Terraform's bucket, a client token Terraform created
accepted and named in the stored object, a poison message moved to Terraform's DLQ by Terraform's redrive policy.
The run is pipeline_on_outputs.run_pipeline, inside conftest.lifecycles' email-ingest example (then destroyed)."""

from __future__ import annotations

import json

import pytest

from tests.terraform.applied import EMAIL_INGEST_EXAMPLE, Lifecycle
from tests.terraform.pipeline_on_outputs import SENDER, SUBJECT, PipelineRun

pytestmark = [pytest.mark.tools, pytest.mark.integration, pytest.mark.timeout(1500)]


@pytest.fixture(scope="module")
def pipeline(lifecycles: dict[str, Lifecycle]) -> PipelineRun:
    lifecycle = lifecycles[EMAIL_INGEST_EXAMPLE]
    assert lifecycle.apply is not None and lifecycle.apply.returncode == 0, lifecycle.describe()
    assert not lifecycle.while_applied_error, lifecycle.while_applied_error
    result: PipelineRun = lifecycle.while_applied
    return result


def test_the_services_settings_are_terraforms_outputs(pipeline: PipelineRun, lifecycles: dict[str, Lifecycle]) -> None:
    aws = pipeline.values["aws"]
    expected_api = {
        "SQS_QUEUE_URL": aws["sqsQueueUrl"],
        "TOKEN_PARAMETER_NAME": aws["tokenParameterName"],
        "TOKEN_PARAMETER_PATH": aws["tokenParameterPath"],
        "AWS_REGION": aws["region"],
    }
    expected_consumer = {
        "SQS_QUEUE_URL": aws["sqsQueueUrl"],
        "SQS_DLQ_URL": aws["sqsDlqUrl"],
        "S3_BUCKET": aws["s3Bucket"],
        "AWS_REGION": aws["region"],
    }
    assert {key: pipeline.api_env.get(key) for key in expected_api} == expected_api
    assert {key: pipeline.consumer_env.get(key) for key in expected_consumer} == expected_consumer
    # ... and they are the resources in Terraform's state, not names made up elsewhere.
    state = lifecycles[EMAIL_INGEST_EXAMPLE].state_after_apply
    for value in (*expected_api.values(), *expected_consumer.values()):
        if value == aws["tokenParameterPath"]:
            assert f'"{value}/' in state, f"no parameter under {value}"  # the path of the clients' parameters
        else:
            assert json.dumps(value) in state, value


def test_a_post_with_the_token_is_stored_in_terraforms_bucket(pipeline: PipelineRun) -> None:
    assert pipeline.posted["token"] == 200
    stored = pipeline.stored["token"]
    assert stored["_key"].startswith(pipeline.consumer_env["S3_KEY_PREFIX"])
    assert (stored["email_subject"], stored["email_sender"]) == (SUBJECT, SENDER)
    assert stored["client"] == "default"  # the single token is the client "default" (terraform/README.md)


def test_a_client_token_terraform_made_is_accepted_and_named_in_the_object(pipeline: PipelineRun) -> None:
    assert pipeline.posted["client"] == 200
    assert pipeline.stored["client"]["client"] == pipeline.client_name


def test_a_poison_message_reaches_terraforms_dlq(pipeline: PipelineRun) -> None:
    assert pipeline.poison_body in pipeline.dead_letters
    assert pipeline.queue_left == 0
