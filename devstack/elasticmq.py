"""ElasticMQ, a real SQS-compatible server (JVM), for local load tests.

moto is the local default and fine for correctness, but it is one GIL-bound Python process that rescans the queue on
every receive (~20 msgs/s at a 1,000-message backlog). ElasticMQ speaks the same SQS JSON protocol as AWS and is
orders of magnitude faster, so load tests use it. ``scripts/tools/install-elasticmq.sh`` installs its jars (pinned in
``tools/elasticmq/pom.xml``) into ``$EMAIL_INGEST_TOOLS_DIR/elasticmq/<version>/lib``.

Usage::

    with ElasticMQServer(max_receive_count=5) as sqs:
        client = boto3.client("sqs", **sqs.client_kwargs())
        client.send_message(QueueUrl=sqs.queue_url, MessageBody="...")

Everything binds 127.0.0.1: the SQS endpoint on a free (or given) port, and the REST statistics UI, which older
ElasticMQ releases start on 0.0.0.0:9325, is disabled (1.7.x no longer ships it; the keys are kept so a version bump
cannot silently open it).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from devstack import processes
from devstack.tools import tools_dir

ELASTICMQ_VERSION = "1.7.1"
"""Must match ``<elasticmq.version>`` in tools/elasticmq/pom.xml (a test checks it)."""
MAIN_CLASS = "org.elasticmq.server.Main"
BIND_HOST = "127.0.0.1"
REGION = "us-east-1"
ACCOUNT_ID = "000000000000"
DUMMY_CREDENTIALS = {"aws_access_key_id": "elasticmq", "aws_secret_access_key": "elasticmq"}
DEFAULT_JVM_OPTIONS: tuple[str, ...] = ("-Xms64m", "-Xmx512m", "-XX:+UseSerialGC")
"""For load: full JIT. Heap for ~100k backlog messages of a few KiB."""
QUICK_START_JVM_OPTIONS: tuple[str, ...] = (*DEFAULT_JVM_OPTIONS, "-XX:TieredStopAtLevel=1")
"""For functional tests: C1 only. Ready ~40% sooner, but SendMessageBatch ran at about half the rate."""
CDS_ARCHIVE_NAME = "elasticmq.jsa"
"""Class-data-sharing archive built by install-elasticmq.sh; used when present."""

_STARTUP_FAILURE_MARKERS = ("java.net.BindException", "Uncaught exception in thread: main")
_QUEUE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,80}$")


class ElasticMQError(RuntimeError):
    """ElasticMQ is not installed, did not start, or died."""


def default_install_dir(version: str = ELASTICMQ_VERSION) -> Path:
    """Where install-elasticmq.sh puts a version: ``<tools dir>/elasticmq/<version>`` (jars in ``lib/``)."""
    return tools_dir() / "elasticmq" / version


def install_problem(install_dir: Path | None = None) -> str | None:
    """What is missing to start ElasticMQ (a Java runtime, the jars), or None."""
    server_jar = (install_dir or default_install_dir()) / "lib" / f"elasticmq-server_2.13-{ELASTICMQ_VERSION}.jar"
    if not server_jar.is_file():
        return f"ElasticMQ is not installed ({server_jar} is missing)"
    try:
        _java_executable()
    except ElasticMQError as exc:
        return str(exc)
    return None


def _java_executable() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").is_file():
        return str(Path(java_home) / "bin" / "java")
    found = shutil.which("java")
    if not found:
        raise ElasticMQError("java is not on PATH (install a JRE, e.g. Debian's default-jre-headless)")
    return found


def _death_signal_setter() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child get SIGTERM when its parent dies, even by SIGKILL (Linux only).

    libc is resolved here, in the parent: the child between fork and exec only calls ``prctl``.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1

    def arm() -> None:
        prctl(pr_set_pdeathsig, int(signal.SIGTERM))

    return arm


def _hocon_string(value: str) -> str:
    # A JSON string literal is a valid HOCON quoted string.
    return json.dumps(value)


class ElasticMQServer:
    """One ElasticMQ process with a main queue and its dead-letter queue, bound to 127.0.0.1.

    The main queue redrives a message to the DLQ once it has been received ``max_receive_count`` times without
    being deleted (ElasticMQ's ``deadLettersQueue`` setting, the equivalent of an SQS ``RedrivePolicy``).

    With ``create_queues=False`` the server starts with no queue: the caller creates them over the API
    (devstack.bootstrap.ensure_queues, as on moto), so that both local backends get the same attributes.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        queue_name: str = "email-ingest",
        dlq_name: str = "email-ingest-dlq",
        max_receive_count: int = 5,
        visibility_timeout_seconds: int = 30,
        receive_wait_seconds: int = 20,
        install_dir: Path | None = None,
        work_dir: Path | None = None,
        jvm_options: Sequence[str] = DEFAULT_JVM_OPTIONS,
        startup_timeout_seconds: float = 60.0,
        create_queues: bool = True,
    ) -> None:
        for name in (queue_name, dlq_name):
            if not _QUEUE_NAME.fullmatch(name):
                raise ValueError(f"invalid SQS queue name {name!r}")
        if queue_name == dlq_name:
            raise ValueError("queue_name and dlq_name must differ")
        if not 1 <= max_receive_count <= 1000:
            raise ValueError(f"max_receive_count must be 1..1000, got {max_receive_count}")
        if not 0 <= visibility_timeout_seconds <= 43200:
            raise ValueError(f"visibility_timeout_seconds must be 0..43200, got {visibility_timeout_seconds}")
        if not 0 <= receive_wait_seconds <= 20:
            raise ValueError(f"receive_wait_seconds must be 0..20, got {receive_wait_seconds}")
        if port is not None and not 1 <= port <= 65535:
            raise ValueError(f"port must be 1..65535, got {port}")
        self.queue_name = queue_name
        self.dlq_name = dlq_name
        self.max_receive_count = max_receive_count
        self.visibility_timeout_seconds = visibility_timeout_seconds
        self.receive_wait_seconds = receive_wait_seconds
        self.install_dir = install_dir or default_install_dir()
        self.jvm_options = tuple(jvm_options)
        self.startup_timeout_seconds = startup_timeout_seconds
        self.create_queues = create_queues
        self._requested_port = port
        self._port: int | None = None
        self._given_work_dir = work_dir
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._work_dir: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._queue_url: str | None = None
        self._dlq_url: str | None = None
        self.startup_seconds: float | None = None
        """Wall time from spawning the JVM until both queues answered GetQueueUrl (or ListQueues, without queues)."""

    # -- configuration -------------------------------------------------------------------------------------------

    def render_config(self, port: int) -> str:
        """The HOCON file passed as ``-Dconfig.file``."""
        dlq = _hocon_string(self.dlq_name)
        queues = (
            f"""
  {dlq} {{
    defaultVisibilityTimeout = {self.visibility_timeout_seconds} seconds
    delay = 0 seconds
    receiveMessageWait = {self.receive_wait_seconds} seconds
  }}
  {_hocon_string(self.queue_name)} {{
    defaultVisibilityTimeout = {self.visibility_timeout_seconds} seconds
    delay = 0 seconds
    receiveMessageWait = {self.receive_wait_seconds} seconds
    deadLettersQueue {{
      name = {dlq}
      maxReceiveCount = {self.max_receive_count}
    }}
  }}
"""
            if self.create_queues
            else "\n"
        )
        return f"""\
# Rendered by devstack/elasticmq.py. Keeps the bundled pekko settings (request timeout above 20 s long polls).
include classpath("application.conf")

node-address {{
  protocol = http
  host = {_hocon_string(BIND_HOST)}
  port = {port}
  context-path = ""
}}

rest-sqs {{
  enabled = true
  bind-port = {port}
  bind-hostname = {_hocon_string(BIND_HOST)}
  sqs-limits = strict
}}

# The statistics UI: off, and loopback-only should a future version turn it on.
rest-stats {{
  enabled = false
  bind-port = 0
  bind-hostname = {_hocon_string(BIND_HOST)}
}}

generate-node-address = false

aws {{
  region = {_hocon_string(REGION)}
  accountId = {_hocon_string(ACCOUNT_ID)}
}}

queues {{{queues}}}
"""

    # -- properties ----------------------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise ElasticMQError("ElasticMQ is not running")
        return self._port

    @property
    def endpoint_url(self) -> str:
        return f"http://{BIND_HOST}:{self.port}"

    @property
    def queue_url(self) -> str:
        if self._queue_url is None:
            raise ElasticMQError("ElasticMQ is not running" if self.create_queues else "no queue of its own")
        return self._queue_url

    @property
    def dlq_url(self) -> str:
        if self._dlq_url is None:
            raise ElasticMQError("ElasticMQ is not running" if self.create_queues else "no queue of its own")
        return self._dlq_url

    @property
    def pid(self) -> int:
        if self._process is None:
            raise ElasticMQError("ElasticMQ is not running")
        return self._process.pid

    @property
    def log_path(self) -> Path:
        if self._work_dir is None:
            raise ElasticMQError("ElasticMQ has not been started")
        return self._work_dir / "elasticmq.log"

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``boto3.client("sqs", ...)`` / aioboto3 pointing at this server."""
        return {"endpoint_url": self.endpoint_url, "region_name": REGION, **DUMMY_CREDENTIALS}

    def environment(self) -> dict[str, str]:
        """Environment variables (docs/contract.md names) that point the services at this server."""
        return {
            "AWS_REGION": REGION,
            "AWS_ENDPOINT_URL_SQS": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": DUMMY_CREDENTIALS["aws_access_key_id"],
            "AWS_SECRET_ACCESS_KEY": DUMMY_CREDENTIALS["aws_secret_access_key"],
            "SQS_QUEUE_URL": self.queue_url,
            "SQS_DLQ_URL": self.dlq_url,
        }

    # -- lifecycle -----------------------------------------------------------------------------------------------

    def command(self, config_file: Path) -> list[str]:
        classpath = str(self.install_dir / "lib" / "*")
        options = list(self.jvm_options)
        archive = self.install_dir / CDS_ARCHIVE_NAME
        if archive.is_file() and not any(option.startswith("-XX:SharedArchiveFile") for option in options):
            # -Xshare:auto (the default) falls back to loading classes normally if the archive does not fit the JVM.
            options.append(f"-XX:SharedArchiveFile={archive}")
        return [_java_executable(), *options, f"-Dconfig.file={config_file}", "-cp", classpath, MAIN_CLASS]

    def start(self) -> None:
        if self._process is not None:
            raise ElasticMQError("ElasticMQ is already running")
        server_jar = self.install_dir / "lib" / f"elasticmq-server_2.13-{ELASTICMQ_VERSION}.jar"
        if not server_jar.is_file():
            raise ElasticMQError(f"{server_jar} is missing: run scripts/tools/install-elasticmq.sh (or `make tools`)")
        if self._given_work_dir is not None:
            self._work_dir = self._given_work_dir
            self._work_dir.mkdir(parents=True, exist_ok=True)
        else:
            self._tmp = tempfile.TemporaryDirectory(prefix="elasticmq-")
            self._work_dir = Path(self._tmp.name)
        # An auto-picked port can be taken between picking and binding: retry with another one.
        attempts = 1 if self._requested_port is not None else 3
        for attempt in range(1, attempts + 1):
            try:
                self._start_once(self._requested_port or processes.free_port())
            except ElasticMQError:
                self._terminate()
                if attempt == attempts:
                    self.stop()
                    raise
            else:
                atexit.register(self.stop)
                return

    def _start_once(self, port: int) -> None:
        assert self._work_dir is not None
        config_file = self._work_dir / "elasticmq.conf"
        config_file.write_text(self.render_config(port), encoding="utf-8")
        started = time.monotonic()
        # A killed parent must not leave a JVM behind. The death signal follows the forking *thread*, so it is only
        # armed from the main thread (a server started from a short-lived thread would die with that thread).
        on_main_thread = threading.current_thread() is threading.main_thread()
        preexec = _death_signal_setter() if on_main_thread else None
        with self.log_path.open("wb") as log:  # one log per attempt: a previous bind failure must not count
            self._process = subprocess.Popen(
                self.command(config_file),
                cwd=self._work_dir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=preexec,  # noqa: PLW1509 - only a prctl call between fork and exec
            )
        self._port = port
        self._wait_ready(started)
        self.startup_seconds = time.monotonic() - started

    def _wait_ready(self, started: float) -> None:
        client = boto3.client(
            "sqs",
            config=Config(retries={"max_attempts": 1}, connect_timeout=1, read_timeout=5),
            **self.client_kwargs(),
        )
        deadline = started + self.startup_timeout_seconds
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise ElasticMQError(
                    f"ElasticMQ exited with {self._process.returncode} during start-up:\n{self._log_tail()}"
                )
            if self._startup_failed():
                # ElasticMQ logs a failed bind but keeps the JVM running: do not wait for the timeout.
                raise ElasticMQError(f"ElasticMQ could not start on {self.endpoint_url}:\n{self._log_tail()}")
            try:
                if self.create_queues:
                    self._queue_url = client.get_queue_url(QueueName=self.queue_name)["QueueUrl"]
                    self._dlq_url = client.get_queue_url(QueueName=self.dlq_name)["QueueUrl"]
                else:
                    client.list_queues()
            except (BotoCoreError, ClientError) as error:
                last_error = error
                time.sleep(0.1)
            else:
                return
        raise ElasticMQError(
            f"ElasticMQ did not answer on {self.endpoint_url} within {self.startup_timeout_seconds} s "
            f"(last error: {last_error}):\n{self._log_tail()}"
        )

    def _startup_failed(self) -> bool:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return False
        return any(marker in text for marker in _STARTUP_FAILURE_MARKERS)

    def _log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout_seconds: float = 10.0) -> None:
        """SIGTERM (the JVM runs its shutdown hooks), then SIGKILL after ``timeout_seconds``. Idempotent."""
        atexit.unregister(self.stop)
        self._terminate(timeout_seconds)
        if self._tmp is not None:
            with contextlib.suppress(OSError):
                self._tmp.cleanup()
            self._tmp = None

    def _terminate(self, timeout_seconds: float = 10.0) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=timeout_seconds)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._port = None
        self._queue_url = None
        self._dlq_url = None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
