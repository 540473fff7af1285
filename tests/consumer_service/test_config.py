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
    ],
)
def test_invalid_value_names_its_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        ConsumerSettings.from_env({**REQUIRED, variable: value})
    assert [problem.split("=")[0] for problem in caught.value.problems] == [variable]
