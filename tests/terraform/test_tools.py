"""The standard Terraform linters on terraform/: fmt, tflint (per module, with terraform/.tflint.hcl) and checkov.

`terraform validate` is not run: it needs the providers from the Terraform registry, which is not reachable from
this project's machines (see terraform/README.md, "Checks").
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.terraform.hcl import TERRAFORM_DIR, rel, terraform_cli, terraform_dirs
from tests.tooling import require_tool, run_tool

pytestmark = pytest.mark.tools

TFLINT_CONFIG = TERRAFORM_DIR / ".tflint.hcl"


def _isolated_env(tmp_path: Path) -> dict[str, str]:
    # An empty CLI config instead of the machine's; fmt talks to no registry and no checkpoint service.
    config = tmp_path / "empty.tfrc"
    config.write_text("")
    return {"TF_CLI_CONFIG_FILE": str(config), "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1"}


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=cwd, env={**os.environ, **env}, capture_output=True, text=True, timeout=120, check=False
    )


################################################################################
# fmt
################################################################################


def test_fmt(tmp_path: Path) -> None:
    run_tool([terraform_cli(), "fmt", "-check", "-recursive", "-diff", str(TERRAFORM_DIR)], env=_isolated_env(tmp_path))


def test_fmt_rejects_unformatted_code(tmp_path: Path) -> None:
    (tmp_path / "main.tf").write_text('variable "x" {\ntype=string\n}\n')
    result = _run([terraform_cli(), "fmt", "-check", "-recursive", str(tmp_path)], tmp_path, _isolated_env(tmp_path))
    assert result.returncode != 0
    assert "main.tf" in result.stdout


################################################################################
# tflint
################################################################################


@pytest.mark.parametrize("directory", terraform_dirs(), ids=rel)
def test_tflint(directory: Path, tmp_path: Path) -> None:
    tflint = require_tool("tflint")
    run_tool(
        [tflint, f"--config={TFLINT_CONFIG}", f"--chdir={directory}", "--format=compact"],
        env={"TFLINT_PLUGIN_DIR": str(tmp_path / "plugins")},
    )


@pytest.mark.parametrize(
    ("source", "rule"),
    [
        ('variable "x" {\n  description = "d"\n}\n', "terraform_typed_variables"),
        ('variable "x" {\n  type = string\n}\n', "terraform_documented_variables"),
        ('variable "x" {\n  description = "d"\n  type        = string\n}\n', "terraform_unused_declarations"),
        (
            'variable "BadName" {\n  description = "d"\n  type        = string\n}\n\noutput "o" {\n'
            '  description = "d"\n  value       = var.BadName\n}\n',
            "terraform_naming_convention",
        ),
    ],
    ids=["untyped", "undocumented", "unused", "naming"],
)
def test_tflint_config_catches(source: str, rule: str, tmp_path: Path) -> None:
    tflint = require_tool("tflint")
    (tmp_path / "main.tf").write_text(source)
    result = _run(
        [tflint, f"--config={TFLINT_CONFIG}", f"--chdir={tmp_path}", "--format=compact"],
        tmp_path,
        {"TFLINT_PLUGIN_DIR": str(tmp_path / "plugins")},
    )
    assert result.returncode != 0, result.stdout
    assert rule in result.stdout, result.stdout


################################################################################
# checkov
################################################################################


CANARY = """resource "aws_sqs_queue" "canary" {
  name                    = "canary"
  sqs_managed_sse_enabled = false
}
"""


@pytest.fixture(scope="module")
def checkov_failures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """One checkov run (it takes ~20 s to start) over a copy of terraform/ beside a canary module with an
    unencrypted queue: failed check IDs by file, relative to the scanned directory."""
    scanned = tmp_path_factory.mktemp("checkov")
    shutil.copytree(TERRAFORM_DIR, scanned / "terraform", ignore=shutil.ignore_patterns(".terraform", "*.tfstate*"))
    (scanned / "canary").mkdir()
    (scanned / "canary" / "main.tf").write_text(CANARY)
    args = [require_tool("checkov"), "--framework", "terraform", "--skip-download", "--output", "json"]
    # BC_SKIP_MAPPING: no call to the vendor's API for guideline mappings (this runs offline).
    result = _run([*args, "--directory", str(scanned)], scanned, {"BC_SKIP_MAPPING": "TRUE"})
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"checkov printed no report (exit {result.returncode})\n{result.stdout}\n{result.stderr}")
    failures: dict[str, list[str]] = {}
    for item in report if isinstance(report, list) else [report]:
        for check in item.get("results", {}).get("failed_checks", []):
            path = str(Path(check["file_abs_path"]).relative_to(scanned))
            failures.setdefault(path, []).append(check["check_id"])
    return failures


def test_checkov(checkov_failures: dict[str, list[str]]) -> None:
    ours = {path: checks for path, checks in checkov_failures.items() if path.startswith("terraform/")}
    assert ours == {}, "failed checkov checks: fix them, or skip inline with #checkov:skip=CKV_...:reason"


def test_checkov_catches_the_canary(checkov_failures: dict[str, list[str]]) -> None:
    assert "CKV_AWS_27" in checkov_failures.get("canary/main.tf", []), checkov_failures


_SKIP = re.compile(r"#\s*checkov:skip=([A-Z0-9_]+)(?::(.*))?")


def test_every_checkov_skip_gives_a_reason() -> None:
    skips = [
        (rel(path), match.group(1), (match.group(2) or "").strip())
        for path in sorted(TERRAFORM_DIR.rglob("*.tf"))
        for match in _SKIP.finditer(path.read_text())
    ]
    assert skips, "expected the documented skips (key policies, optional logging) to be found"
    assert [skip for skip in skips if len(skip[2]) < 20] == []
