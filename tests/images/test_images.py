"""The two images as built from docker/*.Dockerfile (tests/images/build.py), run as Kubernetes runs them.

Every container runs hardened: a read-only root, every capability dropped, no-new-privileges and a 512 MiB memory
limit, as the image's own USER. They share this machine's network namespace (``--network=host``) and every
server in them binds 127.0.0.1; AWS is the suite's moto server on 127.0.0.1. Nothing is published or NATed.

The base is the builder's local stand-in for the digest-pinned python:3.11 slim image: Debian's Python 3.11.2
under /usr (linked from /usr/local/bin), not CPython 3.11.x under /usr/local; test_the_image_runs_the_stand_in_python
says which one it ran on.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import os
import re
import signal
import subprocess
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devstack.bootstrap import DUMMY_CREDENTIALS, Resources, StackNames, bootstrap
from devstack.emulator import MotoServer
from devstack.faultproxy import FaultProxy, Mode
from devstack.metrics_text import metric_value
from devstack.processes import LOOPBACK, free_port
from ingest_common.envelope import pack_body
from tests.aws_helpers import queue_depth, seed_payload, stored_keys, stored_objects, wait_for
from tests.images import build
from tests.images.build import BuiltImage
from tests.support.api import post
from tests.support.consumer import enqueue, envelope

REPO_ROOT = build.REPO_ROOT
SIZE_LIMIT_BYTES = 200_000_000  # 200 MB, uncompressed, as podman counts it
MEMORY_LIMIT_BYTES = 512 * 1024 * 1024
UID = 10001
HARDENED = ("--read-only", "--cap-drop=all", "--security-opt=no-new-privileges", "--memory=512m")
PACKAGES = {"api": "api_service", "consumer": "consumer_service"}
# botocore's own clients, made by its credential providers (AssumeRole, web identity, SSO).
CREDENTIAL_SERVICES = {"sts", "sso", "sso-oidc"}
CONTAINER_LABEL = "email-ingest.test"


def _require(problem: str | None) -> None:
    """Fails under `make test` (EMAIL_INGEST_REQUIRE_TOOLS=1), skips elsewhere, like tests.tooling.require_tool."""
    if problem is None:
        return
    if os.environ.get("EMAIL_INGEST_REQUIRE_TOOLS") == "1":
        pytest.fail(problem)
    pytest.skip(problem)


def test_missing_tools_fail_under_make_test_and_skip_elsewhere(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(build, "BASE_ARCHIVE", tmp_path / "base.oci.tar")
    problem = build.missing()
    assert problem is not None and ("base.oci.tar" in problem or "root" in problem), problem
    monkeypatch.setenv("EMAIL_INGEST_REQUIRE_TOOLS", "1")
    with pytest.raises(pytest.fail.Exception, match=r"make tools|root"):
        _require(problem)
    monkeypatch.delenv("EMAIL_INGEST_REQUIRE_TOOLS")
    with pytest.raises(pytest.skip.Exception):
        _require(problem)
    _require(None)


@pytest.fixture(scope="module")
def images() -> dict[str, BuiltImage]:
    _require(build.missing())
    return build.build_images()


# --- containers -----------------------------------------------------------------------------------


@dataclasses.dataclass
class Container:
    id: str
    name: str

    def exec(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return build.run(["podman", "exec", self.id, *args], timeout=timeout)

    def logs(self) -> str:
        completed = build.run(["podman", "logs", self.id], check=False)
        return completed.stdout + completed.stderr

    def signal(self, signum: signal.Signals) -> None:
        build.run(["podman", "kill", f"--signal={signum.name}", self.id])

    def wait(self, timeout: float) -> int:
        """The exit code once the container stopped."""
        return int(build.run(["podman", "wait", self.id], timeout=timeout).stdout.strip())

    def running(self) -> bool:
        state = build.run(["podman", "inspect", "--format", "{{.State.Running}}", self.id], check=False)
        return state.stdout.strip() == "true"


class Containers:
    """Starts hardened containers labelled with this test's run id and removes every one of them at the end."""

    def __init__(self) -> None:
        self.run_id = uuid.uuid4().hex[:12]
        self.started: list[Container] = []

    def start(self, image: BuiltImage, env: dict[str, str], *, args: tuple[str, ...] = ()) -> Container:
        name = f"email-ingest-{image.service}-{self.run_id}-{len(self.started)}"
        command = ["podman", "run", "--detach", f"--name={name}", f"--label={CONTAINER_LABEL}={self.run_id}"]
        command += [*HARDENED, "--network=host"]
        command += [f"--env={key}={value}" for key, value in env.items()]
        completed = build.run([*command, image.reference, *args])
        container = Container(completed.stdout.strip().splitlines()[-1], name)
        self.started.append(container)
        return container

    def run_once(self, image: BuiltImage, *args: str, entrypoint: str = "python") -> str:
        """The output of a one-off command in the image (hardened, no network at all), removed afterwards."""
        command = ["podman", "run", "--rm", f"--label={CONTAINER_LABEL}={self.run_id}", *HARDENED, "--network=none"]
        return build.run([*command, f"--entrypoint={entrypoint}", image.reference, *args], timeout=120).stdout

    def remove_all(self) -> None:
        for container in self.started:
            build.run(["podman", "rm", "--force", "--time=0", container.id], check=False)
        left = build.run(["podman", "ps", "--all", "--quiet", f"--filter=label={CONTAINER_LABEL}={self.run_id}"])
        assert left.stdout.strip() == "", f"containers left behind: {left.stdout}"


@pytest.fixture
def containers() -> Iterator[Containers]:
    started = Containers()
    yield started
    started.remove_all()


# --- what the image holds -------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.tools
def test_each_image_is_at_most_200_mb(images: dict[str, BuiltImage], record_property: Any) -> None:
    for service, image in images.items():
        record_property(f"{service}_size_bytes", image.size_bytes)
        record_property(f"{service}_build_seconds", round(image.build_seconds, 1))
    sizes = {service: f"{image.size_bytes / 1e6:.1f} MB" for service, image in images.items()}
    assert all(image.size_bytes <= SIZE_LIMIT_BYTES for image in images.values()), sizes


def aws_clients_called(package: str) -> set[str]:
    """The service names of every `<session>.client("name", ...)` call in the package and ingest_common."""
    names: set[str] = set()
    for root in (package, "ingest_common"):
        for file in (REPO_ROOT / root).rglob("*.py"):
            for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "client"
                    and node.args
                    and isinstance(node.args[0], ast.Constant)
                    and isinstance(node.args[0].value, str)
                ):
                    names.add(node.args[0].value)
    return names


def test_the_client_scanner_sees_the_services_of_each_package() -> None:
    assert aws_clients_called("api_service") == {"sqs", "ssm"}
    assert aws_clients_called("consumer_service") == {"sqs", "s3"}


PROBE = """
import json, sys
import botocore.session
from botocore.exceptions import UnknownServiceError
import {package}.__main__  # noqa: the entry point imports (it runs only as __main__)
session = botocore.session.get_session()
loaded, absent = [], []
for name in sys.argv[1].split(","):
    session.get_service_model(name)
    loaded.append(name)
for name in ("ec2", "dynamodb", "s3" if "{package}" == "api_service" else "ssm"):
    try:
        session.get_service_model(name)
    except UnknownServiceError:
        absent.append(name)
print(json.dumps({{"version": sys.version.split()[0], "prefix": sys.prefix, "base_prefix": sys.base_prefix,
                  "executable": sys.executable, "loaded": loaded, "absent": absent}}))
"""


@pytest.mark.integration
@pytest.mark.tools
def test_the_image_runs_the_stand_in_python_with_the_models_it_calls(
    images: dict[str, BuiltImage], containers: Containers
) -> None:
    for service, image in images.items():
        package = PACKAGES[service]
        wanted = sorted(aws_clients_called(package) | CREDENTIAL_SERVICES)
        probe = json.loads(containers.run_once(image, "-c", PROBE.format(package=package), ",".join(wanted)))
        # The stand-in base: Debian's python3.11 (3.11.2) under /usr, where python:3.11.x-slim has /usr/local.
        assert probe["version"].startswith("3.11."), probe
        assert probe["base_prefix"] == "/usr", probe
        assert probe["prefix"] == "/opt/venv", probe
        assert probe["loaded"] == wanted, probe
        assert len(probe["absent"]) == 3, f"{service}: botocore still holds models this image never calls: {probe}"


LEFTOVER_NAMES = {
    "pip",
    "setuptools",
    "pkg_resources",
    "_distutils_hack",
    "distutils-precedence.pth",
    "easy_install.py",
}
LEFTOVER_PATTERN = re.compile(r"^(pip|setuptools|wheel|distribute)-\d[^/]*\.(dist-info|egg-info|whl)$")
BIN_PATTERN = re.compile(r"^(pip\d*(\.\d+)?|easy_install(-\d.*)?|wheel)$")


def packaging_leftovers(root: Path) -> list[str]:
    """Paths (relative to root) of pip, setuptools, wheel or what they leave behind, anywhere under root."""
    found: list[str] = []
    for directory, subdirs, files in os.walk(root):
        here = Path(directory)
        relative = "/" + here.relative_to(root).as_posix().lstrip(".").lstrip("/")
        if relative in {"/proc", "/sys", "/dev"}:
            subdirs[:] = []
            continue
        in_site = here.name in {"site-packages", "dist-packages"}
        for name in [*subdirs, *files]:
            hit = (
                name in LEFTOVER_NAMES
                or LEFTOVER_PATTERN.match(name)
                or (in_site and name == "wheel")
                or (here.name == "bin" and BIN_PATTERN.match(name))
            )
            if hit:
                found.append(f"{relative.rstrip('/')}/{name}")
    return sorted(found)


def test_the_leftover_scanner_finds_each_kind(tmp_path: Path) -> None:
    expected = [
        "/opt/venv/bin/pip3.11",
        "/usr/local/lib/python3.11/ensurepip/_bundled/pip-24.0-py3-none-any.whl",
        "/usr/local/lib/python3.11/site-packages/_distutils_hack",
        "/usr/local/lib/python3.11/site-packages/distutils-precedence.pth",
        "/usr/local/lib/python3.11/site-packages/pkg_resources",
        "/usr/local/lib/python3.11/site-packages/setuptools-79.0.1.dist-info",
        "/usr/local/lib/python3.11/site-packages/wheel",
        "/usr/share/python-wheels/setuptools-66.1.1-py3-none-any.whl",
    ]
    decoys = ["/usr/lib/python3.11/pipes.py", "/opt/venv/lib/python3.11/site-packages/botocore/data/pipes/x.json"]
    for path in expected + decoys:
        target = tmp_path / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.suffix in {".whl", ".pth", ".json", ".py"} or target.parent.name == "bin":
            target.write_text("")
        else:
            target.mkdir()
    assert packaging_leftovers(tmp_path) == sorted(expected)


@pytest.mark.integration
@pytest.mark.tools
def test_no_pip_setuptools_or_their_leftovers_anywhere(images: dict[str, BuiltImage]) -> None:
    for service, image in images.items():
        mounted = Path(build.run(["podman", "image", "mount", image.reference]).stdout.strip())
        try:
            leftovers = packaging_leftovers(mounted)
            # Nor anything of the build's substitutions: the pip configuration and wheels bound over /root.
            traces = ("etc/pip.conf", "root/.config", "root/wheels", "tmp/requirements.lock")
            traces_found = [path for path in traces if (mounted / path).exists()]
        finally:
            build.run(["podman", "image", "unmount", image.reference], check=False)
        assert leftovers == [], f"{service}: {leftovers}"
        assert traces_found == [], f"{service}: {traces_found}"


# --- the images running ---------------------------------------------------------------------------


@dataclasses.dataclass
class Stack:
    resources: Resources
    token: str
    endpoint_url: str
    api_port: int
    consumer_port: int

    @property
    def api_url(self) -> str:
        return f"http://{LOOPBACK}:{self.api_port}"

    @property
    def consumer_url(self) -> str:
        return f"http://{LOOPBACK}:{self.consumer_port}"

    def aws_env(self) -> dict[str, str]:
        return {
            **DUMMY_CREDENTIALS,
            "AWS_REGION": self.resources.region,
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "LOG_LEVEL": "info",
        }

    def api_env(self, **extra: str) -> dict[str, str]:
        return {
            **self.aws_env(),
            "API_HOST": LOOPBACK,  # the image says 0.0.0.0; on the host's network, loopback only
            "API_PORT": str(self.api_port),
            "SQS_QUEUE_URL": self.resources.queue_url,
            "TOKEN_PARAMETER_NAME": self.resources.token_parameter,
            **extra,
        }

    def consumer_env(self, **extra: str) -> dict[str, str]:
        return {
            **self.aws_env(),
            "CONSUMER_HOST": LOOPBACK,
            "CONSUMER_PORT": str(self.consumer_port),
            "SQS_QUEUE_URL": self.resources.queue_url,
            "SQS_DLQ_URL": self.resources.dead_letter_queue_url,
            "S3_BUCKET": self.resources.bucket,
            "SQS_WAIT_TIME_SECONDS": "1",
            **extra,
        }


@pytest.fixture
def stack(moto_server: MotoServer, stack_names: StackNames, api_token: str) -> Stack:
    names = dataclasses.replace(stack_names, visibility_timeout_seconds=5)
    resources = bootstrap(moto_server.endpoint_url, api_token, names)
    return Stack(resources, api_token, moto_server.endpoint_url, free_port(), free_port())


def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # 127.0.0.1 only
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""


def wait_ready(container: Container, url: str) -> None:
    def ready() -> bool:
        assert container.running(), f"{container.name} stopped:\n{container.logs()}"
        return http_get(f"{url}/readyz")[0] == 200

    wait_for(ready, timeout=60, interval=0.2, message=f"{url}/readyz")


def start_both(containers: Containers, images: dict[str, BuiltImage], stack: Stack) -> tuple[Container, Container]:
    api = containers.start(images["api"], stack.api_env())
    consumer = containers.start(images["consumer"], stack.consumer_env())
    wait_ready(api, stack.api_url)
    wait_ready(consumer, stack.consumer_url)
    return api, consumer


HARDENING_PROBE = """
import json, os
status = dict(line.split(":", 1) for line in open("/proc/1/status").read().splitlines() if ":" in line)
cmdline = open("/proc/1/cmdline", "rb").read().split(b"\\0")
limit = None
for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
    if os.path.exists(path):
        limit = open(path).read().strip()
        break
root_options = [line.split()[5].split(",") for line in open("/proc/1/mountinfo") if line.split()[4] == "/"]
writable = []
for directory, subdirs, files in os.walk("/app"):
    probe = os.path.join(directory, ".probe")
    try:
        os.close(os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        writable.append(directory)
        os.unlink(probe)
    except OSError:
        pass
    for name in files:
        try:
            open(os.path.join(directory, name), "ab").close()
            writable.append(os.path.join(directory, name))
        except OSError:
            pass
others = []
for directory in ("/", "/opt/venv", "/etc", "/tmp"):
    try:
        os.close(os.open(os.path.join(directory, ".probe"), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        others.append(directory)
        os.unlink(os.path.join(directory, ".probe"))
    except OSError:
        pass
print(json.dumps({
    "uid": status["Uid"].split(), "gid": status["Gid"].split(), "groups": status["Groups"].split(),
    "caps": {k: status[k].strip() for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")},
    "no_new_privs": status["NoNewPrivs"].strip(), "cmdline": [c.decode() for c in cmdline if c],
    "memory_limit": limit, "root_options": root_options[-1], "writable_app": writable, "writable_elsewhere": others,
    "app_files": sum(len(f) for _, _, f in os.walk("/app")),
}))
"""


@pytest.mark.integration
@pytest.mark.tools
def test_pid_1_runs_unprivileged_read_only_and_memory_limited(
    images: dict[str, BuiltImage], containers: Containers, stack: Stack
) -> None:
    for service, container in zip(("api", "consumer"), start_both(containers, images, stack), strict=True):
        probe = json.loads(container.exec("python", "-c", HARDENING_PROBE).stdout)
        assert probe["cmdline"] == ["python", "-m", PACKAGES[service]], probe  # the service itself is PID 1
        assert probe["uid"] == [str(UID)] * 4, probe
        assert probe["gid"] == [str(UID)] * 4, probe
        assert probe["groups"] in ([], [str(UID)]), probe
        assert set(probe["caps"].values()) == {"0000000000000000"}, probe
        assert probe["no_new_privs"] == "1", probe
        assert probe["memory_limit"] == str(MEMORY_LIMIT_BYTES), probe
        assert "ro" in probe["root_options"], probe  # the root file system is mounted read-only
        assert probe["app_files"] > 10, probe
        assert probe["writable_app"] == [], f"{service}: writable under /app: {probe['writable_app']}"
        assert probe["writable_elsewhere"] == ["/tmp"], f"{service}: only /tmp (a tmpfs) takes writes: {probe}"
    # The API sizes its memory budget from the limit it finds (docs/contract.md): (512 MiB - 160 MiB) / 2.
    status, metrics = http_get(f"{stack.api_url}/metrics")
    assert status == 200
    assert metric_value(metrics, "email_ingest_api_memory_budget_bytes") == 176 * 1024 * 1024


@pytest.mark.integration
@pytest.mark.tools
def test_the_api_image_answers_probes_and_the_consumer_image_stores_a_post(
    images: dict[str, BuiltImage], containers: Containers, stack: Stack
) -> None:
    api, consumer = start_both(containers, images, stack)
    assert http_get(f"{stack.api_url}/healthz")[0] == 200
    assert http_get(f"{stack.consumer_url}/healthz")[0] == 200
    content = f"from the image {uuid.uuid4()}"
    status, body = post(f"{stack.api_url}/api/email", seed_payload(stack.token, email_content=content))
    assert status == 200, (body, api.logs())
    status, _ = post(f"{stack.api_url}/api/email", seed_payload("not-the-token"))
    assert status == 401

    def stored() -> list[dict[str, Any]]:
        return list(stored_objects(stack.endpoint_url, stack.resources.bucket).values())

    wait_for(lambda: len(stored()) == 1, timeout=60, message="the consumer image to store the email")
    (document,) = stored()
    assert document["email_content"] == content, consumer.logs()
    assert document["email_subject"] == "Happy new year!"
    assert document["client"] == "default"
    assert '"event":"emails_stored"' in consumer.logs()


def stored_results(log_text: str) -> list[str]:
    return [
        result
        for line in log_text.splitlines()
        if '"event":"emails_stored"' in line
        for result, count in json.loads(line)["results"].items()
        for _ in range(count)
    ]


@pytest.mark.integration
@pytest.mark.tools
def test_sigterm_drains_the_api_image(images: dict[str, BuiltImage], containers: Containers, stack: Stack) -> None:
    # A long linger keeps requests waiting in the publisher when SIGTERM arrives.
    api = containers.start(images["api"], stack.api_env(PUBLISH_LINGER_MS="300"))
    consumer = containers.start(images["consumer"], stack.consumer_env())
    wait_ready(api, stack.api_url)
    wait_ready(consumer, stack.consumer_url)
    results: dict[int, tuple[int, Any]] = {}
    lock = threading.Lock()

    def client(index: int) -> None:
        outcome = post(f"{stack.api_url}/api/email", seed_payload(stack.token, email_content=f"c{index}"))
        with lock:
            results[index] = outcome

    threads = [threading.Thread(target=client, args=(index,)) for index in range(40)]
    for thread in threads:
        thread.start()

    def waiting() -> bool:
        status, text = http_get(f"{stack.api_url}/metrics")
        return status == 200 and metric_value(text, "email_ingest_api_requests_in_flight") >= 10

    wait_for(waiting, timeout=30, interval=0.01, message="requests in flight")
    api.signal(signal.SIGTERM)
    for thread in threads:
        thread.join(60)
    assert api.wait(timeout=40) == 0, api.logs()
    assert len(results) == 40
    assert all(status in {200, 503, 0} for status, _ in results.values()), results
    accepted = {f"c{index}" for index, (status, _) in results.items() if status == 200}
    assert accepted, "requests in flight at SIGTERM are answered, not dropped"
    log = api.logs()
    assert '"event":"publisher_drained"' in log
    assert '"event":"stopped"' in log

    def contents() -> set[str]:
        return {doc["email_content"] for doc in stored_objects(stack.endpoint_url, stack.resources.bucket).values()}

    # Generous: on a stalled machine a failed S3 write waits out the visibility timeout before its retry.
    try:
        wait_for(lambda: contents() >= accepted, timeout=120, message="every accepted email stored")
    except AssertionError as exc:
        missing = sorted(accepted - contents())
        raise AssertionError(f"{exc}: missing {missing}\n--- consumer's log\n{consumer.logs()[-6000:]}") from exc
    assert contents() == accepted
    assert len(stored_keys(stack.endpoint_url, stack.resources.bucket)) == len(accepted), "each stored once"


@pytest.mark.integration
@pytest.mark.tools
def test_sigterm_drains_the_consumer_image(
    images: dict[str, BuiltImage], containers: Containers, stack: Stack, moto_server: MotoServer
) -> None:
    # S3 behind a slow proxy on 127.0.0.1: the consumer is mid-batch, with writes in flight, when SIGTERM lands.
    slow_s3 = FaultProxy.for_url(moto_server.endpoint_url, name="slow-s3").start()
    try:
        slow_s3.set_mode(Mode.LATENCY, latency=0.05)
        env = stack.consumer_env(
            SHUTDOWN_GRACE_SECONDS="5",
            CONSUMER_MAX_IN_FLIGHT="8",
            S3_MAX_CONCURRENT_WRITES="8",
            AWS_ENDPOINT_URL_S3=slow_s3.endpoint_url,
        )
        envelopes = [envelope(i) for i in range(200)]
        enqueue(stack.endpoint_url, stack.resources.queue_url, [pack_body([e.to_item()]) for e in envelopes])
        first = containers.start(images["consumer"], env)
        bucket = stack.resources.bucket
        wait_for(
            lambda: len(stored_keys(stack.endpoint_url, bucket)) >= 20,
            timeout=60,
            interval=0.02,
            message="the first emails",
        )
        first.signal(signal.SIGTERM)
        assert first.wait(timeout=5 + 10) == 0, first.logs()
        first_log = first.logs()
        assert '"event":"consumer_drained"' in first_log
        assert len(stored_keys(stack.endpoint_url, bucket)) < 200, "the test must stop the consumer mid-run"
        # A second consumer finishes the queue: what the first held is back in it, not lost.
        second = containers.start(images["consumer"], {**env, "CONSUMER_PORT": str(free_port())})
        wait_for(
            lambda: queue_depth(stack.endpoint_url, stack.resources.queue_url) == (0, 0),
            timeout=120,
            message="the second consumer to drain the queue",
        )
        stored = stored_keys(stack.endpoint_url, bucket)
        second.signal(signal.SIGTERM)
        assert second.wait(timeout=15) == 0, second.logs()
        results = stored_results(first_log) + stored_results(second.logs())
    finally:
        slow_s3.stop()
    assert stored == {item.s3_key("emails/") for item in envelopes}
    assert results.count("created") == 200, "every email written exactly once"
