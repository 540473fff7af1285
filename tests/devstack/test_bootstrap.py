"""The bootstrap's queues against a real moto server: they take the largest envelope a valid email makes."""

from __future__ import annotations

from devstack.bootstrap import StackNames, bootstrap, emulator_client
from devstack.emulator import MotoServer
from ingest_common.envelope import largest_message_bytes


def test_queue_and_dlq_take_the_largest_envelope(moto_server: MotoServer, stack_names: StackNames) -> None:
    resources = bootstrap(moto_server.endpoint_url, "token", stack_names)
    sqs = emulator_client("sqs", moto_server.endpoint_url)
    largest = "x" * largest_message_bytes()
    for url in (resources.queue_url, resources.dead_letter_queue_url):
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["MaximumMessageSize"])["Attributes"]
        assert int(attributes["MaximumMessageSize"]) >= largest_message_bytes()
        sqs.send_message(QueueUrl=url, MessageBody=largest)


def test_bootstrap_is_idempotent_and_brings_an_old_queue_in_line(
    moto_server: MotoServer, stack_names: StackNames
) -> None:
    sqs = emulator_client("sqs", moto_server.endpoint_url)
    sqs.create_queue(QueueName=stack_names.queue, Attributes={"MaximumMessageSize": "262144"})
    first = bootstrap(moto_server.endpoint_url, "token", stack_names)
    second = bootstrap(moto_server.endpoint_url, "token", stack_names)
    assert first == second
    attributes = sqs.get_queue_attributes(QueueUrl=first.queue_url, AttributeNames=["MaximumMessageSize"])
    assert int(attributes["Attributes"]["MaximumMessageSize"]) >= largest_message_bytes()
