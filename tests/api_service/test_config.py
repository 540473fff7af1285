"""API settings from the environment: defaults, and errors that name the variable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from api_service.clients import RateLimit
from api_service.config import DEFAULT_MAX_BODY_BYTES, ApiSettings, largest_valid_body_bytes
from api_service.memory_budget import MIB, MemoryBudget, container_memory_limit, default_budget_bytes
from ingest_common.config import ConfigError
from ingest_common.email import CONTENT_MAX_BYTES, SENDER_MAX_CHARS, SUBJECT_MAX_CHARS

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
    assert settings.publish_max_hold_seconds == pytest.approx(0.05)
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
        ("PUBLISH_MAX_HOLD_MS", "-1"),
        ("PUBLISH_MAX_HOLD_MS", "1001"),
        ("PUBLISH_MAX_HOLD_MS", "soon"),
        ("PUBLISH_MAX_PENDING", "0"),
        ("MAX_BODY_BYTES", "10"),
        ("MEMORY_BUDGET_BYTES", "1024"),
        ("TOKEN_REFRESH_SECONDS", "nan"),
        ("TOKEN_EARLY_REFRESH_SECONDS", "0.5"),  # below 1 s a flood of wrong tokens would reach SSM too often
        ("TOKEN_EARLY_REFRESH_SECONDS", "soon"),
        ("LOG_LEVEL", "loud"),
        ("SQS_QUEUE_URL", "emails"),
        ("TOKEN_PARAMETER_PATH", "clients"),
        ("TOKEN_PARAMETER_PATH", "/email-ingest/prod clients"),
        ("MAX_CLIENTS", "0"),
        ("RATE_LIMIT_RPS", "-1"),
        ("RATE_LIMIT_RPS", "1e-320"),
        ("RATE_LIMIT_BURST", "0"),
    ],
)
def test_invalid_value_names_its_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        ApiSettings.from_env({**REQUIRED, variable: value})
    assert len(caught.value.problems) == 1
    assert caught.value.problems[0].startswith(variable)


def test_clients_and_rate_limits_default_to_the_single_token_and_no_limit() -> None:
    settings = ApiSettings.from_env(REQUIRED)
    assert settings.token_parameter_name == "/email-ingest/api-token"
    assert settings.token_parameter_path is None
    assert settings.max_clients == 100
    assert settings.rate_limit.unlimited


def test_a_path_alone_is_enough_and_a_trailing_slash_is_dropped() -> None:
    environ = {**REQUIRED, "TOKEN_PARAMETER_PATH": "/email-ingest/prod/clients/"}
    del environ["TOKEN_PARAMETER_NAME"]
    settings = ApiSettings.from_env(environ)
    assert settings.token_parameter_name is None
    assert settings.token_parameter_path == "/email-ingest/prod/clients"


def test_a_name_or_a_path_is_required() -> None:
    environ = dict(REQUIRED)
    del environ["TOKEN_PARAMETER_NAME"]
    with pytest.raises(ConfigError, match="TOKEN_PARAMETER_NAME or TOKEN_PARAMETER_PATH is required"):
        ApiSettings.from_env(environ)


def test_the_burst_defaults_to_one_second_of_the_rate() -> None:
    assert ApiSettings.from_env({**REQUIRED, "RATE_LIMIT_RPS": "2.5"}).rate_limit == RateLimit(2.5, 3)
    limited = ApiSettings.from_env({**REQUIRED, "RATE_LIMIT_RPS": "0.5", "RATE_LIMIT_BURST": "20"})
    assert limited.rate_limit == RateLimit(0.5, 20)
    with pytest.raises(ConfigError, match="RATE_LIMIT_BURST is set but RATE_LIMIT_RPS is 0"):
        ApiSettings.from_env({**REQUIRED, "RATE_LIMIT_BURST": "20"})


def test_staleness_below_refresh_is_refused() -> None:
    with pytest.raises(ConfigError, match="TOKEN_MAX_STALENESS_SECONDS"):
        ApiSettings.from_env({**REQUIRED, "TOKEN_REFRESH_SECONDS": "600", "TOKEN_MAX_STALENESS_SECONDS": "60"})


def _escape_every_character(text: str) -> str:
    """The longest JSON a client may write for a string: every UTF-16 code unit as \\uXXXX."""
    units = text.encode("utf-16-be")
    return '"' + "".join(f"\\u{units[i]:02x}{units[i + 1]:02x}" for i in range(0, len(units), 2)) + '"'


def test_the_default_body_limit_takes_the_largest_valid_email_in_the_worst_escaping() -> None:
    token = "t" * 8192
    fields = {
        "email_subject": "😀" * SUBJECT_MAX_CHARS,  # a surrogate pair escaped: 12 bytes a character
        "email_sender": "😀" * SENDER_MAX_CHARS,
        "email_timestream": "4102444799",
        "email_content": "a" * CONTENT_MAX_BYTES,  # one UTF-8 byte escaped: 6 bytes
    }
    data = ", ".join(f"{_escape_every_character(k)}: {_escape_every_character(v)}" for k, v in fields.items())
    body = f'{{"data": {{{data}}}, {_escape_every_character("token")}: {_escape_every_character(token)}}}'
    assert json.loads(body)["data"] == fields
    assert len(body) <= DEFAULT_MAX_BODY_BYTES == largest_valid_body_bytes()
    assert ApiSettings.from_env(REQUIRED).max_body_bytes == DEFAULT_MAX_BODY_BYTES
    assert DEFAULT_MAX_BODY_BYTES - len(body) < 8 * 1024, "the limit stays close to what a valid email can need"


def test_memory_budget_follows_the_container_limit(tmp_path: Path) -> None:
    (tmp_path / "memory.max").write_text("536870912\n")  # the chart's 512Mi
    assert container_memory_limit(tmp_path) == 512 * MIB
    assert default_budget_bytes(512 * MIB) == 176 * MIB
    (tmp_path / "memory.max").write_text("max\n")
    assert container_memory_limit(tmp_path) is None
    (tmp_path / "memory.max").unlink()
    (tmp_path / "memory").mkdir()
    (tmp_path / "memory" / "memory.limit_in_bytes").write_text(str(1 << 30))  # cgroup v1
    assert container_memory_limit(tmp_path) == 1 << 30
    assert container_memory_limit(tmp_path / "absent") is None
    assert default_budget_bytes(None) == 176 * MIB
    assert default_budget_bytes(100 * MIB) == 16 * MIB, "a small limit still takes a few large emails"


def test_a_budget_that_cannot_take_one_largest_request_is_refused() -> None:
    with pytest.raises(ConfigError, match="MEMORY_BUDGET_BYTES"):
        ApiSettings.from_env({**REQUIRED, "MEMORY_BUDGET_BYTES": str(16 * MIB), "MAX_BODY_BYTES": str(8 * MIB)})


def test_memory_budget_reservations_never_exceed_the_limit() -> None:
    budget = MemoryBudget(100)
    with budget.reservation() as first:
        assert first.add(60)
        with budget.reservation() as second:
            assert not second.add(41)
            assert second.add(40)
            assert budget.reserved == 100
        assert budget.reserved == 60
    assert budget.reserved == 0
