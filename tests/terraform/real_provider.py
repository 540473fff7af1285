"""Terraform with a real AWS provider: the copy of terraform/ it runs on, the provider mirror, running the CLI.

The modules need provider 6.x (1 MiB SQS messages); the machines this project runs on have only hashicorp/aws
5.100.0, in the image's filesystem mirror. 5.100 refuses `max_message_size` above 262144 at plan time, and
nothing else in the code is 6.x-only, so the tests run on a copy of terraform/ whose only differences are
COPY_CHANGES below (the one place that lists them; terraform/README.md, "What is and is not checked").
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest

from tests.terraform.hcl import TERRAFORM_DIR, terraform_cli

PROVIDER_ADDRESS = "registry.terraform.io/hashicorp/aws"
MIRROR_VERSION = "5.100.0"

# Everything the copy changes, as (files, old text, new text). Each must match at least once in each file, so
# that a change of the source fails here instead of silently testing something else.
COPY_CHANGES: tuple[tuple[str, str, str], ...] = (
    # The provider constraint: 5.100 stands in for 6.x.
    ("modules/**/versions.tf", 'version = ">= 6.8"', 'version = ">= 5.100"'),
    ("envs/*/versions.tf", 'version = "~> 6.8"', 'version = ">= 5.100"'),
    ("bootstrap/versions.tf", 'version = "~> 6.8"', 'version = ">= 5.100"'),
    # The queue's size and its lower bound: 5.100's maximum is 262144, below the 533359 a valid email needs.
    ("modules/queue/variables.tf", "default     = 1048576", "default     = 262144"),
    ("modules/queue/variables.tf", "var.max_message_size >= 533359", "var.max_message_size >= 262144"),
)

# The roots: every env, bootstrap and every module's example.
ROOTS: tuple[str, ...] = tuple(
    str(path.relative_to(TERRAFORM_DIR))
    for path in sorted(
        [
            *(TERRAFORM_DIR / "envs").iterdir(),
            TERRAFORM_DIR / "bootstrap",
            *TERRAFORM_DIR.glob("modules/*/examples/complete"),
        ]
    )
    if path.is_dir()
)

# Where machine images put a filesystem mirror (the image of this project's machines: /opt/tf-plugins).
MIRROR_CANDIDATES = (
    os.environ.get("EMAIL_INGEST_TF_PLUGIN_MIRROR", ""),
    "/opt/tf-plugins",
    "/usr/local/share/terraform/plugins",
    "/usr/share/terraform/plugins",
    str(Path.home() / ".terraform.d" / "plugins"),
    str(Path.home() / ".local" / "share" / "terraform" / "plugins"),
)


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(part) if part.isdigit() else -1 for part in path.parent.parent.name.split("."))


def find_mirror() -> tuple[Path, str] | None:
    """(mirror directory, provider version) of a filesystem mirror holding hashicorp/aws for linux_amd64, or None."""
    for candidate in filter(None, MIRROR_CANDIDATES):
        binaries = sorted(
            Path(candidate).glob(f"{PROVIDER_ADDRESS}/*/linux_amd64/terraform-provider-aws_v*"), key=_version_key
        )
        if binaries:
            return Path(candidate), binaries[-1].parent.parent.name
    return None


def make_copy(destination: Path) -> Path:
    """terraform/ copied to `destination`/terraform with COPY_CHANGES applied; returns the copy's directory."""
    copy = destination / "terraform"
    shutil.copytree(
        TERRAFORM_DIR, copy, ignore=shutil.ignore_patterns(".terraform", "*.tfstate*", ".terraform.lock.hcl")
    )
    for pattern, old, new in COPY_CHANGES:
        files = sorted(copy.glob(pattern))
        assert files, f"COPY_CHANGES: no file matches {pattern}"
        for path in files:
            text = path.read_text()
            assert old in text, f"COPY_CHANGES: {old!r} is not in {path.relative_to(copy)}"
            path.write_text(text.replace(old, new))
    return copy


@dataclass(frozen=True)
class Provider:
    """How `terraform init` gets the AWS provider: the CLI config file, and a sentence saying which was used."""

    cli_config: Path
    description: str
    mirror: Path | None


def provider_setup(directory: Path) -> Provider:
    """A CLI config using the image's mirror for hashicorp/aws (5.100.0 here), or, where there is none, the
    ordinary installation (the registry) with a shared plugin cache."""
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "terraform.tfrc"
    found = find_mirror()
    if found:
        mirror, version = found
        config.write_text(
            "provider_installation {\n"
            f'  filesystem_mirror {{\n    path    = "{mirror}"\n    include = ["{PROVIDER_ADDRESS}"]\n  }}\n'
            f'  direct {{\n    exclude = ["{PROVIDER_ADDRESS}"]\n  }}\n'
            "}\n"
        )
        return Provider(config, f"hashicorp/aws {version} from the filesystem mirror {mirror}", mirror)
    cache = directory / "plugin-cache"
    cache.mkdir(exist_ok=True)
    config.write_text(f'plugin_cache_dir = "{cache}"\n')
    return Provider(config, "hashicorp/aws as `terraform init` found it (no filesystem mirror: the registry)", None)


@dataclass
class Run:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    def describe(self) -> str:
        return (
            f"terraform {' '.join(self.args)} exited {self.returncode} after {self.seconds:.0f} s\n"
            f"--- stdout\n{self.stdout[-8000:]}\n--- stderr\n{self.stderr[-8000:]}"
        )


def terraform(
    root: Path, *args: str, provider: Provider, env: dict[str, str] | None = None, timeout: float = 600
) -> Run:
    """`terraform -chdir=root args...` with the provider's CLI config, no colour, no checkpoint calls."""
    merged = {
        **os.environ,
        "TF_CLI_CONFIG_FILE": str(provider.cli_config),
        "TF_IN_AUTOMATION": "1",
        "CHECKPOINT_DISABLE": "1",
        "TF_INPUT": "0",
        **(env or {}),
    }
    argv = [terraform_cli(), f"-chdir={root}", *args]
    started = time.monotonic()
    try:
        done = subprocess.run(argv, env=merged, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        output = [part.decode() if isinstance(part, bytes) else part or "" for part in (exc.stdout, exc.stderr)]
        pytest.fail(f"terraform {' '.join(args)} in {root} did not finish in {timeout} s\n" + "\n".join(output))
    return Run(list(args), done.returncode, done.stdout, done.stderr, time.monotonic() - started)


# Lines for pytest's summary (tests/terraform/conftest.py prints them): which provider, the measured times.
REPORT: list[str] = []


def report(line: str) -> None:
    REPORT.append(line)


def provider_unavailable(message: str) -> None:
    """No AWS provider could be had at all: fails under `make test` (EMAIL_INGEST_REQUIRE_TOOLS=1), skips elsewhere,
    like tests.tooling.require_tool."""
    if os.environ.get("EMAIL_INGEST_REQUIRE_TOOLS") == "1":
        pytest.fail(message)
    pytest.skip(message)


T = TypeVar("T")
R = TypeVar("R")


def in_parallel(function: Callable[[T], R], items: Sequence[T], workers: int) -> dict[T, R]:
    """function(item) for every item on `workers` threads (each mostly waits on a terraform process); the results
    by item. An exception in one (pytest.fail included) is raised after all have finished, so that none is left
    running."""
    results: dict[T, R] = {}
    errors: list[BaseException] = []
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = {pool.submit(function, item): item for item in items}
        for future in as_completed(futures):
            try:
                results[futures[future]] = future.result()
            except BaseException as exc:  # re-raised below, after the others finished
                errors.append(exc)
    if errors:
        raise errors[0]
    return results


@dataclass(frozen=True)
class Workspace:
    """The copy of terraform/ with COPY_CHANGES, every root initialised, and the provider that init used."""

    copy: Path
    provider: Provider
    init_runs: dict[str, Run]

    def root(self, name: str) -> Path:
        return self.copy / name


INIT_TIMEOUT = 180


def initialise(directory: Path) -> Workspace:
    """The copy in `directory`, with `terraform init -backend=false` run in every root.

    The first root is initialised alone: without a mirror it fills the shared plugin cache, which Terraform does
    not guard against concurrent writers; the others then only link to what is there (with the mirror, all of them
    link to the mirror's unpacked provider).
    """
    copy = make_copy(directory)
    provider = provider_setup(directory / "cli")

    def init(root: str) -> Run:
        return terraform(copy / root, "init", "-backend=false", "-no-color", provider=provider, timeout=INIT_TIMEOUT)

    first = init(ROOTS[0])
    if first.returncode != 0:
        if provider.mirror is None:
            provider_unavailable(f"hashicorp/aws cannot be had (no mirror, init failed):\n{first.describe()}")
        pytest.fail(f"init of {ROOTS[0]} with {provider.description} failed:\n{first.describe()}")
    runs = {ROOTS[0]: first, **in_parallel(init, ROOTS[1:], workers=4)}
    failed = {root: run for root, run in runs.items() if run.returncode != 0}
    assert not failed, "\n\n".join(f"{root}: {run.describe()}" for root, run in failed.items())
    report(f"provider: {provider.description}")
    report(f"init of {len(runs)} roots: {max(run.seconds for run in runs.values()):.1f} s the slowest")
    return Workspace(copy, provider, runs)
