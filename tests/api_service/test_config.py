"""API settings from the environment: defaults, and errors that name the variable."""

from __future__ import annotations

import pytest

from api_service.config import ApiSettings
from ingest_common.config import ConfigError

REQUIRED = {
    "AWS_REGION": "eu-west-1",
    "SQS_QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/123456789012/emails",
    "TOKEN_PARAMETER_NAME": "/email-ingest/api-token",
}


def test_defaults() -> None:
    settings = ApiSettings.from_env(REQUIRED)
    assert settings.port == 8080
    assert settings.host == "127.0.0.1"
    assert settings.publish_linger_seconds == pytest.approx(0.005)
    assert settings.token_refresh_seconds == 300
    assert settings.token_rotation_grace_seconds == 900
    assert settings.token_early_refresh_seconds == 5


def test_region_falls_back_to_aws_default_region() -> None:
    environ = {**REQUIRED, "AWS_DEFAULT_REGION": "us-west-2"}
    del environ["AWS_REGION"]
    assert ApiSettings.from_env(environ).region == "us-west-2"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("API_PORT", "0"),
        ("API_PORT", "http"),
        ("PUBLISH_LINGER_MS", "-1"),
        ("PUBLISH_MAX_PENDING", "0"),
        ("MAX_BODY_BYTES", "10"),
        ("TOKEN_REFRESH_SECONDS", "nan"),
        ("TOKEN_EARLY_REFRESH_SECONDS", "0.5"),  # below 1 s a flood of wrong tokens would reach SSM too often
        ("TOKEN_EARLY_REFRESH_SECONDS", "soon"),
        ("LOG_LEVEL", "loud"),
        ("SQS_QUEUE_URL", "emails"),
    ],
)
def test_invalid_value_names_its_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        ApiSettings.from_env({**REQUIRED, variable: value})
    assert len(caught.value.problems) == 1
    assert caught.value.problems[0].startswith(variable)


def test_staleness_below_refresh_is_refused() -> None:
    with pytest.raises(ConfigError, match="TOKEN_MAX_STALENESS_SECONDS"):
        ApiSettings.from_env({**REQUIRED, "TOKEN_REFRESH_SECONDS": "600", "TOKEN_MAX_STALENESS_SECONDS": "60"})
