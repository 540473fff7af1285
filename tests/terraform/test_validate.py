"""`terraform init -backend=false` and `terraform validate` of every root (envs/*, bootstrap, every module's example)
with the real AWS provider: 0 errors, 0 warnings (issue 25, section 3).

They run on the copy of terraform/ that real_provider.COPY_CHANGES makes (the provider constraint, the queue's size),
with the image's filesystem mirror (hashicorp/aws 5.100.0 here) through TF_CLI_CONFIG_FILE, or, where there is no
mirror, with what `terraform init` finds in the registry; the summary says which.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.terraform.real_provider import ROOTS, Run, Workspace, in_parallel, report, terraform

pytestmark = [pytest.mark.tools, pytest.mark.integration, pytest.mark.timeout(600)]

VALIDATE_TIMEOUT = 120


@pytest.fixture(scope="module")
def validations(workspace: Workspace) -> dict[str, tuple[Run, dict[str, Any]]]:
    """validate -json of every root, four at a time (each loads the provider's schema: ~2 s, ~300 MB)."""

    def validate(root: str) -> tuple[Run, dict[str, Any]]:
        directory = workspace.root(root)
        run = terraform(directory, "validate", "-json", provider=workspace.provider, timeout=VALIDATE_TIMEOUT)
        try:
            return run, json.loads(run.stdout)
        except json.JSONDecodeError:
            pytest.fail(f"{root}: validate printed no JSON\n{run.describe()}")

    results = in_parallel(validate, ROOTS, workers=4)
    report(f"validate of {len(results)} roots: {max(run.seconds for run, _ in results.values()):.1f} s the slowest")
    return results


def test_thirteen_roots() -> None:
    # envs/dev, envs/prod, bootstrap and the ten modules' examples: a new root is picked up, a lost one noticed.
    assert len(ROOTS) == 13, ROOTS


@pytest.mark.parametrize("root", ROOTS)
def test_validate_without_errors_or_warnings(root: str, validations: dict[str, tuple[Run, dict[str, Any]]]) -> None:
    run, result = validations[root]
    diagnostics = [
        f"{item.get('severity')}: {item.get('summary')}: {item.get('detail', '')} "
        f"({item.get('range', {}).get('filename', '')}:{item.get('range', {}).get('start', {}).get('line', '')})"
        for item in result.get("diagnostics", [])
    ]
    assert (result.get("valid"), result.get("error_count"), result.get("warning_count")) == (True, 0, 0), diagnostics
    assert run.returncode == 0, run.describe()


def test_validate_reports_a_warning(workspace: Workspace) -> None:
    """The count above is the real one: a deprecated attribute in an initialised root shows up as a warning."""
    root = workspace.root("modules/queue/examples/complete")
    canary = root / "canary.tf"
    # aws_s3_bucket's `acl` argument is deprecated in 5.x and 6.x alike.
    canary.write_text('resource "aws_s3_bucket" "canary" {\n  bucket = "canary"\n  acl    = "private"\n}\n')
    try:
        run = terraform(root, "validate", "-json", "-no-color", provider=workspace.provider, timeout=VALIDATE_TIMEOUT)
    finally:
        canary.unlink()
    result = json.loads(run.stdout)
    assert result["warning_count"] >= 1, result
