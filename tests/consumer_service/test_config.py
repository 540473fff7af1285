"""Consumer settings from the environment."""

from __future__ import annotations

import pytest

from consumer_service.config import ConsumerSettings
from ingest_common.config import ConfigError

REQUIRED = {
    "AWS_REGION": "eu-west-1",
    "SQS_QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/123456789012/emails",
    "S3_BUCKET": "emails-bucket",
}


def test_defaults() -> None:
    settings = ConsumerSettings.from_env(REQUIRED)
    assert (settings.pollers, settings.max_in_flight, settings.wait_time_seconds) == (4, 64, 20)
    assert settings.key_prefix == "emails/"
    assert settings.dead_letter_queue_url is None
    assert settings.poison_retry_window_seconds == 1800
    assert settings.visibility_timeout_seconds == 0


def test_the_per_email_layout_is_the_default() -> None:
    assert ConsumerSettings.from_env(REQUIRED).storage_layout == "per-email"


def test_the_batched_layout_reads_its_limits_and_holds_more_messages_in_flight() -> None:
    settings = ConsumerSettings.from_env({**REQUIRED, "STORAGE_LAYOUT": "Batched"})
    assert (settings.storage_layout, settings.max_in_flight) == ("batched", 10_000)
    assert (settings.batch_max_bytes, settings.batch_max_emails, settings.batch_max_seconds) == (32 << 20, 10_000, 60)
    assert settings.batch_max_held_bytes == 128 << 20
    assert (settings.key_prefix, settings.batch_key_prefix) == ("emails/", "batches/")
    chosen = ConsumerSettings.from_env(
        {
            **REQUIRED,
            "STORAGE_LAYOUT": "batched",
            "CONSUMER_MAX_IN_FLIGHT": "2000",
            "BATCH_MAX_BYTES": "1048576",
            "BATCH_MAX_EMAILS": "500",
            "BATCH_MAX_SECONDS": "2.5",
            "BATCH_MAX_HELD_BYTES": "4194304",
        }
    )
    assert (chosen.max_in_flight, chosen.batch_max_bytes, chosen.batch_max_emails) == (2000, 1 << 20, 500)
    assert (chosen.batch_max_seconds, chosen.batch_max_held_bytes) == (2.5, 4 << 20)


def test_a_batch_larger_than_what_may_be_held_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"BATCH_MAX_BYTES=4096 is above BATCH_MAX_HELD_BYTES=2048"):
        ConsumerSettings.from_env({**REQUIRED, "BATCH_MAX_BYTES": "4096", "BATCH_MAX_HELD_BYTES": "2048"})


def test_poison_retry_window_is_read() -> None:
    settings = ConsumerSettings.from_env({**REQUIRED, "POISON_RETRY_WINDOW_SECONDS": "600"})
    assert settings.poison_retry_window_seconds == 600


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("CONSUMER_POLLERS", "0"),
        ("CONSUMER_MAX_IN_FLIGHT", "many"),
        ("SQS_WAIT_TIME_SECONDS", "21"),
        ("HEARTBEAT_FRACTION", "1.5"),
        ("POISON_RETRY_WINDOW_SECONDS", "0"),
        ("POISON_RETRY_WINDOW_SECONDS", "43201"),
        ("S3_KEY_PREFIX", "emails"),
        ("SQS_DLQ_URL", "dlq"),
        ("STORAGE_LAYOUT", "parquet"),
        ("BATCH_KEY_PREFIX", "/batches/"),
        ("BATCH_MAX_BYTES", "10"),
        ("BATCH_MAX_EMAILS", "0"),
        ("BATCH_MAX_SECONDS", "0"),
        ("BATCH_MAX_HELD_BYTES", "lots"),
        ("CONSUMER_MAX_IN_FLIGHT", "120001"),
        ("RECEIVE_FILL_SECONDS", "-1"),
        ("RECEIVE_FILL_SECONDS", "61"),
        ("RECEIVE_FILL_SECONDS", "soon"),
    ],
)
def test_invalid_value_names_its_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        ConsumerSettings.from_env({**REQUIRED, variable: value})
    assert [problem.split("=")[0] for problem in caught.value.problems] == [variable]
