"""The whole pipeline on 127.0.0.1: the local AWS, bootstrap, API and consumer, as real processes.

The local AWS is one of two backends (``StackConfig.local_aws``, ``LOCAL_AWS`` for `make run`):

* ``moto`` (the default, nothing to install): one moto server for SSM, SQS and S3. Fine for correctness, but its
  one process carries about 35 requests/s (loadtest/README.md): its receives and deletes rescan the queue, and the
  consumer's polls starve the API's sends.
* ``fast``: ElasticMQ as SQS and gofakes3 as S3 (scripts/tools installs both), moto for SSM only. The pipeline, not
  the emulator, sets the pace: use it for load tests.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

from devstack.bootstrap import DUMMY_CREDENTIALS, Resources, StackNames, bootstrap
from devstack.elasticmq import ElasticMQServer
from devstack.emulator import MotoServer
from devstack.gofakes3 import GoFakeS3Server
from devstack.processes import LOOPBACK, ManagedProcess, free_port, python_module, terminate_all

LOCAL_AWS_CHOICES = ("moto", "fast")


@dataclass
class StackConfig:
    api_port: int = 0  # 0: a free port
    consumer_port: int = 0
    emulator_port: int = 0  # moto
    sqs_port: int = 0  # ElasticMQ (local_aws="fast")
    s3_port: int = 0  # gofakes3 (local_aws="fast")
    local_aws: str = "moto"  # one of LOCAL_AWS_CHOICES
    token: str | None = None  # None: a generated one
    with_api: bool = True
    with_consumer: bool = True
    names: StackNames = field(default_factory=StackNames)
    # Extra environment for each service (tunables, fault injection in tests).
    api_env: dict[str, str] = field(default_factory=dict)
    consumer_env: dict[str, str] = field(default_factory=dict)
    log_dir: Path | None = None  # None: services write to this process's stdout
    emulator_log_dir: Path | None = None  # the local AWS servers' logs; None: log_dir (neither: stdout)
    sqs_endpoint_url: str | None = None  # another SQS server (ElasticMQ); None: the backend's
    s3_endpoint_url: str | None = None  # another S3 server; None: the backend's
    emulator_endpoint_url: str | None = None  # an emulator already running (tests share one); None: start moto


class DevStack:
    """The development stack (moto or ElasticMQ + gofakes3, not the LocalStack product), as a context manager;
    everything it starts is stopped on exit, in reverse order."""

    def __init__(self, config: StackConfig | None = None) -> None:
        self.config = config or StackConfig()
        if self.config.local_aws not in LOCAL_AWS_CHOICES:
            raise ValueError(f"local_aws: choose one of {LOCAL_AWS_CHOICES}, not {self.config.local_aws!r}")
        self.token = self.config.token or secrets.token_urlsafe(24)
        logs = self.config.emulator_log_dir or self.config.log_dir
        self.emulator = MotoServer(self.config.emulator_port, log_path=logs / "moto.log" if logs else None)
        self.elasticmq: ElasticMQServer | None = None
        self.gofakes3: GoFakeS3Server | None = None
        if self.config.local_aws == "fast" and self.config.sqs_endpoint_url is None:
            # No queue in its configuration: the bootstrap creates them over the API, as on moto, so that the
            # attributes (visibility, long poll, redrive policy, size) are the same on both backends.
            self.elasticmq = ElasticMQServer(
                port=self.config.sqs_port or None,
                create_queues=False,
                work_dir=logs / "elasticmq" if logs else None,
            )
        if self.config.local_aws == "fast" and self.config.s3_endpoint_url is None:
            self.gofakes3 = GoFakeS3Server(self.config.s3_port, log_path=logs / "gofakes3.log" if logs else None)
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
        if self.config.sqs_endpoint_url:
            return self.config.sqs_endpoint_url
        return self.elasticmq.endpoint_url if self.elasticmq is not None else self.endpoint_url

    @property
    def s3_endpoint_url(self) -> str:
        if self.config.s3_endpoint_url:
            return self.config.s3_endpoint_url
        return self.gofakes3.endpoint_url if self.gofakes3 is not None else self.endpoint_url

    def emulator_logs(self) -> dict[str, Path]:
        """The log file of each local AWS server this stack started (server name -> path)."""
        logs: dict[str, Path] = {}
        if self.config.emulator_endpoint_url is None and self.emulator.process.log_path is not None:
            logs["moto"] = self.emulator.process.log_path
        if self.elasticmq is not None and self.elasticmq.running:
            logs["ElasticMQ"] = self.elasticmq.log_path
        if self.gofakes3 is not None and self.gofakes3.log_path is not None:
            logs["gofakes3"] = self.gofakes3.log_path
        return logs

    def aws_env(self) -> dict[str, str]:
        """What points a process at the local AWS instead of the real one."""
        env = {
            **DUMMY_CREDENTIALS,
            "AWS_REGION": self.config.names.region,
            "AWS_DEFAULT_REGION": self.config.names.region,
            "AWS_ENDPOINT_URL": self.endpoint_url,
        }
        if self.sqs_endpoint_url != self.endpoint_url:
            env["AWS_ENDPOINT_URL_SQS"] = self.sqs_endpoint_url
        if self.s3_endpoint_url != self.endpoint_url:
            env["AWS_ENDPOINT_URL_S3"] = self.s3_endpoint_url
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
            # moto and gofakes3 start while the JVM does (it takes the longest); then each is waited for.
            if self.config.emulator_endpoint_url is None:
                self.emulator.spawn()
            if self.gofakes3 is not None:
                self.gofakes3.spawn()
            if self.elasticmq is not None:
                self.elasticmq.start()
            if self.config.emulator_endpoint_url is None:
                self.emulator.wait_ready()
            if self.gofakes3 is not None:
                self.gofakes3.wait_ready()
            self.resources = bootstrap(
                self.endpoint_url,
                self.token,
                self.config.names,
                sqs_endpoint_url=self.sqs_endpoint_url,
                s3_endpoint_url=self.s3_endpoint_url,
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
        if self.gofakes3 is not None:
            self.gofakes3.stop()
        if self.elasticmq is not None:
            # Its queues live in memory, so there is nothing to save; and a JVM told to stop waits for the long
            # polls it holds (up to 20 s) before it exits.
            self.elasticmq.stop(timeout_seconds=2)
        if self.config.emulator_endpoint_url is None:
            self.emulator.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()
