"""Terraform roots applied to the project's patched moto (moto_for_terraform.py): apply, plan for drift, destroy.

moto serves TLS with a certificate made for the run: the bucket policies deny plain HTTP, as AWS does, and
moto_for_terraform evaluates them. Each root gets its own moto server, so roots run side by side without sharing
names or state, and nothing of one outlives its test. The provider reaches moto through AWS_ENDPOINT_URL, the
variable every AWS SDK knows, so the roots themselves are unchanged (only real_provider.COPY_CHANGES differ from
terraform/). AWS_MAX_ATTEMPTS=2 bounds the SDK's retries and every step has a time limit, so that a call moto
cannot serve fails instead of hanging.
"""

from __future__ import annotations

import json
import os
import ssl
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest

from devstack.processes import LOOPBACK, ManagedProcess, ProcessFailed, free_port, python_module
from tests.aws_helpers import wait_for
from tests.certificates import self_signed_certificate
from tests.terraform.hcl import TERRAFORM_DIR
from tests.terraform.real_provider import Provider, Run, terraform
from tests.tooling import REPO_ROOT

REGION = "eu-west-1"
# moto's account: bootstrap's allowed_account_ids must name it, and it is in every ARN moto makes.
ACCOUNT_ID = "123456789012"

APPLY_TIMEOUT = 420
DESTROY_TIMEOUT = 300


@dataclass(frozen=True)
class PatchedMoto:
    """A running moto_for_terraform server: its HTTPS endpoint and the certificate that clients trust."""

    endpoint: str
    ca_bundle: Path

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=REGION,
            verify=str(self.ca_bundle),
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def env(self) -> dict[str, str]:
        """What points a process (terraform, the services) at this server: the endpoint every AWS SDK knows, its
        certificate, test credentials, one region, no instance metadata lookup (the provider would try
        169.254.169.254 for credentials) and no shared config files."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_CA_BUNDLE": str(self.ca_bundle),
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        }


def terraform_env(moto: PatchedMoto) -> dict[str, str]:
    """moto's env, and few retries (AWS_MAX_ATTEMPTS, which the provider's SDK reads), so that a call moto cannot
    serve fails sooner."""
    return {**moto.env(), "AWS_MAX_ATTEMPTS": "2"}


@contextmanager
def patched_moto(directory: Path) -> Iterator[PatchedMoto]:
    """A moto server with moto_for_terraform's patches and AWS's managed IAM policies (the eks and iam modules attach
    them by ARN), over TLS on a free loopback port; its log in `directory`."""
    cert, key = self_signed_certificate(directory, "moto")
    port = free_port()
    process = ManagedProcess(
        "moto-for-terraform",
        python_module(
            "tests.terraform.moto_for_terraform", "-H", LOOPBACK, "-p", str(port), "-c", str(cert), "-k", str(key)
        ),
        env={**os.environ, "MOTO_IAM_LOAD_MANAGED_POLICIES": "true"},
        log_path=directory / "moto.log",
        cwd=REPO_ROOT,
    )
    process.start()
    moto = PatchedMoto(f"https://{LOOPBACK}:{port}", cert)
    try:
        wait_for(lambda: _answers(moto) or not process.running(), timeout=90, interval=0.2, message="moto's server")
        if not process.running():
            raise ProcessFailed(f"moto exited with {process.returncode()}; see {process.log_path}")
        yield moto
    finally:
        process.stop(10)


def _answers(moto: PatchedMoto) -> bool:
    try:
        with urllib.request.urlopen(
            f"{moto.endpoint}/moto-api/data.json", timeout=5, context=ssl.create_default_context(cafile=moto.ca_bundle)
        ) as response:
            return int(response.status) == 200
    except OSError:
        return False


def make_certificate(moto: PatchedMoto) -> str:
    """An ACM certificate in moto for the roots whose listener needs one (`certificate_arn`)."""
    arn: str = moto.client("acm").request_certificate(DomainName="ingest.example.com", ValidationMethod="DNS")[
        "CertificateArn"
    ]
    return arn


def secure_string_values(moto: PatchedMoto) -> dict[str, str]:
    """Every SecureString parameter in moto by name, decrypted: the tokens that must never be in a state."""
    ssm = moto.client("ssm")
    names = [
        parameter["Name"]
        for page in ssm.get_paginator("describe_parameters").paginate()
        for parameter in page["Parameters"]
        if parameter["Type"] == "SecureString"
    ]
    values: dict[str, str] = {}
    for start in range(0, len(names), 10):
        answer = ssm.get_parameters(Names=names[start : start + 10], WithDecryption=True)
        values.update({parameter["Name"]: parameter["Value"] for parameter in answer["Parameters"]})
    return values


@dataclass
class Lifecycle:
    """What happened to one root: each run, and what was read while it was applied."""

    root: str
    apply: Run | None = None
    plan: Run | None = None
    destroy: Run | None = None
    state_after_apply: str = ""
    state_after_destroy: dict[str, Any] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)
    while_applied: Any = None
    while_applied_error: str = ""
    moto_log: Path | None = None

    def describe(self) -> str:
        runs = [run.describe() for run in (self.apply, self.plan, self.destroy) if run is not None]
        log = self.moto_log.read_text(errors="replace")[-4000:] if self.moto_log and self.moto_log.exists() else ""
        return f"{self.root}:\n" + "\n".join(runs) + f"\n--- moto's log (end)\n{log}"


WhileApplied = Callable[[Path, PatchedMoto, Provider, dict[str, str]], Any]


def run_lifecycle(
    root: Path,
    name: str,
    provider: Provider,
    log_dir: Path,
    variables: Callable[[PatchedMoto], dict[str, Any]] | None = None,
    while_applied: WhileApplied | None = None,
) -> Lifecycle:
    """apply, then `plan -detailed-exitcode` (0: no changes), then destroy, of `root` on its own patched moto.

    `variables(moto)` gives the -var values (made in moto first where they name resources, e.g. a certificate);
    `while_applied(root, moto, provider, env)` runs between the plan and the destroy and its result is kept.
    A failed step ends the lifecycle: the moto server and everything in it go with it.
    """
    moto_dir = log_dir / name.replace("/", "_")
    lifecycle = Lifecycle(name, moto_log=moto_dir / "moto.log")
    try:
        return _run_steps(lifecycle, root, moto_dir, provider, variables, while_applied)
    except pytest.fail.Exception as exc:  # a step's time limit: say what moto was doing
        pytest.fail(f"{exc}\n{lifecycle.describe()}")


def _run_steps(
    lifecycle: Lifecycle,
    root: Path,
    moto_dir: Path,
    provider: Provider,
    variables: Callable[[PatchedMoto], dict[str, Any]] | None,
    while_applied: WhileApplied | None,
) -> Lifecycle:
    with patched_moto(moto_dir) as moto:
        env = terraform_env(moto)
        var_args = [
            f"-var={key}={value if isinstance(value, str) else json.dumps(value)}"
            for key, value in (variables(moto) if variables else {}).items()
        ]
        common = ["-input=false", "-no-color", "-lock=false", *var_args]
        lifecycle.apply = terraform(
            root, "apply", "-auto-approve", *common, provider=provider, env=env, timeout=APPLY_TIMEOUT
        )
        if lifecycle.apply.returncode != 0:
            return lifecycle
        lifecycle.state_after_apply = (root / "terraform.tfstate").read_text()
        lifecycle.tokens = secure_string_values(moto)
        lifecycle.plan = terraform(
            root, "plan", "-detailed-exitcode", *common, provider=provider, env=env, timeout=APPLY_TIMEOUT
        )
        if while_applied is not None:
            try:
                lifecycle.while_applied = while_applied(root, moto, provider, env)
            except (Exception, pytest.fail.Exception) as exc:  # kept for its test; the destroy still runs
                lifecycle.while_applied_error = f"{type(exc).__name__}: {exc}"
        lifecycle.destroy = terraform(
            root, "destroy", "-auto-approve", *common, provider=provider, env=env, timeout=DESTROY_TIMEOUT
        )
        state = root / "terraform.tfstate"
        lifecycle.state_after_destroy = json.loads(state.read_text()) if state.exists() else {}
    return lifecycle


# The roots applied: bootstrap and every module's example (envs/* need a real account's backend and certificate).
APPLIED_ROOTS: tuple[str, ...] = tuple(
    str(path.relative_to(TERRAFORM_DIR))
    for path in sorted([TERRAFORM_DIR / "bootstrap", *TERRAFORM_DIR.glob("modules/*/examples/complete")])
)
EMAIL_INGEST_EXAMPLE = "modules/email-ingest/examples/complete"
SECRET_EXAMPLE = "modules/secret/examples/complete"


def root_variables(root: str) -> Callable[[PatchedMoto], dict[str, Any]]:
    """The -var values each root requires (they have no default), made in the root's moto where they name a
    resource there."""

    def variables(moto: PatchedMoto) -> dict[str, Any]:
        if root == "bootstrap":
            return {"allowed_account_ids": [ACCOUNT_ID]}
        if root in {"modules/ingress/examples/complete", EMAIL_INGEST_EXAMPLE}:
            return {"certificate_arn": make_certificate(moto)}
        if root == "modules/iam/examples/complete":
            issuer = f"oidc.eks.{REGION}.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE"
            return {
                "oidc_provider_arn": f"arn:aws:iam::{ACCOUNT_ID}:oidc-provider/{issuer}",
                "oidc_issuer": issuer,
                "eks_cluster_arn": f"arn:aws:eks:{REGION}:{ACCOUNT_ID}:cluster/email-ingest-example",
            }
        return {}

    return variables


def plan_without_secrets_manager(root: Path, moto: PatchedMoto, provider: Provider, env: dict[str, str]) -> Run:
    """A plan of an applied root while Secrets Manager cannot be reached (the other services can): shows whether a
    plan, not only an apply, calls GetRandomPassword (terraform/README.md: the plan role needs it)."""
    unreachable = {**env, "AWS_ENDPOINT_URL_SECRETS_MANAGER": f"https://{LOOPBACK}:9"}
    return terraform(
        root, "plan", "-input=false", "-no-color", "-lock=false", provider=provider, env=unreachable, timeout=300
    )
