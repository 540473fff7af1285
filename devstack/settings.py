"""The launchers' settings from the environment (`make run`, `make observe`, `make objects`).

``LOCAL_AWS`` picks the local AWS (``moto``, the default, or ``fast``); each server's port has its own variable, so
that an error can name the one to change.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Final

from devstack.processes import LOOPBACK, port_from_env, require_free_ports
from devstack.stack import LOCAL_AWS_CHOICES, StackConfig

DEFAULT_PORTS: Final = {
    "API_PORT": 8080,
    "CONSUMER_PORT": 8081,
    "EMULATOR_PORT": 5000,  # moto: SSM, and with LOCAL_AWS=moto also SQS and S3
    "SQS_PORT": 9324,  # ElasticMQ (LOCAL_AWS=fast), its usual port
    "S3_PORT": 9000,  # gofakes3 (LOCAL_AWS=fast), its usual port
}


def local_aws_from_env(program: str, environ: Mapping[str, str] | None = None) -> str:
    """``LOCAL_AWS`` (default ``moto``); exits naming the variable when it is neither ``moto`` nor ``fast``."""
    raw = (os.environ if environ is None else environ).get("LOCAL_AWS", "").strip().lower() or "moto"
    if raw not in LOCAL_AWS_CHOICES:
        raise SystemExit(f"{program}: LOCAL_AWS={raw!r}: choose {' or '.join(LOCAL_AWS_CHOICES)}")
    return raw


def port_variables(local_aws: str) -> tuple[str, ...]:
    """The variables of the ports a stack with this backend listens on."""
    aws = ("EMULATOR_PORT", "SQS_PORT", "S3_PORT") if local_aws == "fast" else ("EMULATOR_PORT",)
    return ("API_PORT", "CONSUMER_PORT", *aws)


def stack_config_from_env(
    program: str, *, other_ports: Mapping[str, int] | None = None, consumer_env: Mapping[str, str] | None = None
) -> StackConfig:
    """The StackConfig of `make run`; exits naming the variable to change when a port is bad or already in use.

    `other_ports` (variable -> port) are checked along (a Prometheus beside the stack).
    """
    local_aws = local_aws_from_env(program)
    ports = {name: port_from_env(name, DEFAULT_PORTS[name], program=program) for name in port_variables(local_aws)}
    require_free_ports({**ports, **(other_ports or {})}, program=program)
    return StackConfig(
        api_port=ports["API_PORT"],
        consumer_port=ports["CONSUMER_PORT"],
        emulator_port=ports["EMULATOR_PORT"],
        sqs_port=ports.get("SQS_PORT", 0),
        s3_port=ports.get("S3_PORT", 0),
        local_aws=local_aws,
        token=os.environ.get("API_TOKEN") or None,
        consumer_env=dict(consumer_env or {}),
    )


def s3_endpoint_from_env(program: str) -> str:
    """Where `make run`, started with the same environment, serves S3 (for `make objects`)."""
    local_aws = local_aws_from_env(program)
    name = "S3_PORT" if local_aws == "fast" else "EMULATOR_PORT"
    return f"http://{LOOPBACK}:{port_from_env(name, DEFAULT_PORTS[name], program=program)}"


def batched_layout(environ: Mapping[str, str]) -> bool:
    """Whether the consumer that `environ` configures writes batches (STORAGE_LAYOUT=batched)."""
    return (environ.get("STORAGE_LAYOUT") or "").strip().lower() == "batched"


def stored_prefix(environ: Mapping[str, str]) -> str:
    """The key prefix that consumer stores under, read from the variables it reads, with its defaults."""
    if batched_layout(environ):
        return environ.get("BATCH_KEY_PREFIX") or "batches/"
    return environ.get("S3_KEY_PREFIX") or "emails/"
