"""The whole pipeline on 127.0.0.1: emulator, bootstrap, API and consumer, as real processes."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

from devstack.bootstrap import DUMMY_CREDENTIALS, Resources, StackNames, bootstrap
from devstack.emulator import MotoServer
from devstack.processes import LOOPBACK, ManagedProcess, free_port, python_module, terminate_all


@dataclass
class StackConfig:
    api_port: int = 0  # 0: a free port
    consumer_port: int = 0
    emulator_port: int = 0
    token: str | None = None  # None: a generated one
    with_api: bool = True
    with_consumer: bool = True
    names: StackNames = field(default_factory=StackNames)
    # Extra environment for each service (tunables, fault injection in tests).
    api_env: dict[str, str] = field(default_factory=dict)
    consumer_env: dict[str, str] = field(default_factory=dict)
    log_dir: Path | None = None  # None: services write to this process's stdout
    sqs_endpoint_url: str | None = None  # another SQS server (ElasticMQ); None: the emulator's
    emulator_endpoint_url: str | None = None  # an emulator already running (tests share one); None: start moto


class LocalStack:
    """Context manager; everything it starts is stopped on exit, in reverse order."""

    def __init__(self, config: StackConfig | None = None) -> None:
        self.config = config or StackConfig()
        self.token = self.config.token or secrets.token_urlsafe(24)
        log_dir = self.config.log_dir
        self.emulator = MotoServer(self.config.emulator_port, log_path=log_dir / "moto.log" if log_dir else None)
        self.api_port = self.config.api_port or free_port()
        self.consumer_port = self.config.consumer_port or free_port()
        self.resources: Resources | None = None
        self.api: ManagedProcess | None = None
        self.consumer: ManagedProcess | None = None

    @property
    def api_url(self) -> str:
        return f"http://{LOOPBACK}:{self.api_port}"

    @property
    def consumer_url(self) -> str:
        return f"http://{LOOPBACK}:{self.consumer_port}"

    @property
    def endpoint_url(self) -> str:
        return self.config.emulator_endpoint_url or self.emulator.endpoint_url

    @property
    def sqs_endpoint_url(self) -> str:
        return self.config.sqs_endpoint_url or self.endpoint_url

    def aws_env(self) -> dict[str, str]:
        """What points a process at the local AWS instead of the real one."""
        env = {
            **DUMMY_CREDENTIALS,
            "AWS_REGION": self.config.names.region,
            "AWS_DEFAULT_REGION": self.config.names.region,
            "AWS_ENDPOINT_URL": self.endpoint_url,
        }
        if self.config.sqs_endpoint_url:
            env["AWS_ENDPOINT_URL_SQS"] = self.config.sqs_endpoint_url
        return env

    def _base_env(self) -> dict[str, str]:
        env = {
            key: value for key, value in os.environ.items() if not key.startswith("AWS_") and key not in {"API_TOKEN"}
        }
        env.update(self.aws_env())
        return env

    def api_environment(self) -> dict[str, str]:
        assert self.resources is not None
        return {
            **self._base_env(),
            "API_HOST": LOOPBACK,
            "API_PORT": str(self.api_port),
            "SQS_QUEUE_URL": self.resources.queue_url,
            "TOKEN_PARAMETER_NAME": self.resources.token_parameter,
            **self.config.api_env,
        }

    def consumer_environment(self) -> dict[str, str]:
        assert self.resources is not None
        return {
            **self._base_env(),
            "CONSUMER_HOST": LOOPBACK,
            "CONSUMER_PORT": str(self.consumer_port),
            "SQS_QUEUE_URL": self.resources.queue_url,
            "SQS_DLQ_URL": self.resources.dead_letter_queue_url,
            "S3_BUCKET": self.resources.bucket,
            **self.config.consumer_env,
        }

    def start_api(self) -> ManagedProcess:
        log_dir = self.config.log_dir
        self.api = ManagedProcess(
            "api",
            python_module("api_service"),
            env=self.api_environment(),
            log_path=log_dir / "api.log" if log_dir else None,
        )
        self.api.start()
        self.api.wait_until(f"{self.api_url}/readyz")
        return self.api

    def start_consumer(self) -> ManagedProcess:
        log_dir = self.config.log_dir
        self.consumer = ManagedProcess(
            "consumer",
            python_module("consumer_service"),
            env=self.consumer_environment(),
            log_path=log_dir / "consumer.log" if log_dir else None,
        )
        self.consumer.start()
        self.consumer.wait_until(f"{self.consumer_url}/readyz")
        return self.consumer

    def start(self) -> Self:
        try:
            if self.config.emulator_endpoint_url is None:
                self.emulator.start()
            self.resources = bootstrap(
                self.endpoint_url,
                self.token,
                self.config.names,
                sqs_endpoint_url=self.sqs_endpoint_url,
            )
            if self.config.with_api:
                self.start_api()
            if self.config.with_consumer:
                self.start_consumer()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        terminate_all([process for process in (self.api, self.consumer) if process is not None])
        if self.config.emulator_endpoint_url is None:
            self.emulator.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()
