"""The GitHub Actions workflows: actionlint (with shellcheck on every `run:`), and the rules actionlint does not
check: pinned actions, explicit least permissions, concurrency, and a CD that deploys one tag for both images."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.tooling import REPO_ROOT, require_tool, run_tool

WORKFLOWS_DIR = REPO_ROOT / ".github" / "workflows"
WORKFLOW_FILES = sorted(WORKFLOWS_DIR.glob("*.yml"))
PINNED = re.compile(r"^(?P<action>[A-Za-z0-9_.-]+/[A-Za-z0-9_./-]+)@(?P<sha>[0-9a-f]{40})$")
VERSION_COMMENT = re.compile(r"#\s*v\d+(\.\d+){0,2}\b")
READ_ONLY_VALUES = {"read", "none"}


def load(path: Path) -> dict[Any, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def triggers(workflow: dict[Any, Any]) -> dict[str, Any]:
    # YAML 1.1 reads the key `on` as True.
    value = workflow.get("on", workflow.get(True))
    assert isinstance(value, dict)
    return value


def jobs_of(workflow: dict[str, Any]) -> dict[str, dict[str, Any]]:
    jobs = workflow["jobs"]
    assert isinstance(jobs, dict)
    return jobs


def all_jobs() -> list[tuple[str, str, dict[str, Any]]]:
    return [(path.name, name, job) for path in WORKFLOW_FILES for name, job in jobs_of(load(path)).items()]


def uses_lines(text: str) -> list[tuple[int, str, str]]:
    """(line number, reference, rest of the line) of every `uses:`."""
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        match = re.match(r"^\s*(?:-\s+)?uses:\s*['\"]?([^\s'\"#]+)['\"]?(.*)$", line)
        if match:
            found.append((number, match.group(1), match.group(2)))
    return found


def pin_problem(reference: str, rest_of_line: str) -> str | None:
    """Why a `uses:` reference is not acceptable, or None. Local workflows/actions need no pin."""
    if reference.startswith("./"):
        return None
    if reference.startswith("docker://"):
        return None if "@sha256:" in reference else "docker image not pinned by digest"
    if not PINNED.match(reference):
        return "not pinned to a full 40-hex commit SHA"
    if not VERSION_COMMENT.search(rest_of_line):
        return "no `# vX.Y.Z` comment naming the pinned version"
    return None


ALL_USES = [
    pytest.param(path, number, reference, rest, id=f"{path.name}:{number}")
    for path in WORKFLOW_FILES
    for number, reference, rest in uses_lines(path.read_text(encoding="utf-8"))
]


def test_there_are_workflows() -> None:
    names = {path.name for path in WORKFLOW_FILES}
    assert {"ci.yml", "cd.yml", "terraform.yml"} <= names


# --- actionlint ------------------------------------------------------------------------------------------------


@pytest.mark.tools
@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=[p.name for p in WORKFLOW_FILES])
def test_actionlint_with_shellcheck_is_clean(path: Path) -> None:
    actionlint = require_tool("actionlint")
    shellcheck = require_tool("shellcheck")
    run_tool([actionlint, "-no-color", "-shellcheck", shellcheck, str(path.relative_to(REPO_ROOT))])


@pytest.mark.tools
def test_actionlint_reports_shellcheck_findings(tmp_path: Path) -> None:
    """The check above is only worth something if shellcheck really runs on `run:` scripts."""
    actionlint = require_tool("actionlint")
    shellcheck = require_tool("shellcheck")
    workflows = tmp_path / ".github" / "workflows"
    workflows.mkdir(parents=True)
    (workflows / "bad.yml").write_text(
        "name: bad\non: push\npermissions: {}\njobs:\n  a:\n    runs-on: ubuntu-24.04\n"
        "    permissions: {}\n    steps:\n      - run: echo $UNQUOTED\n"
    )
    completed = subprocess.run(
        [actionlint, "-no-color", "-shellcheck", shellcheck, ".github/workflows/bad.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert completed.returncode == 1, completed.stdout + completed.stderr
    assert "SC2086" in completed.stdout


# --- pinned actions --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "number", "reference", "rest"), ALL_USES)
def test_third_party_actions_are_pinned_to_a_sha(path: Path, number: int, reference: str, rest: str) -> None:
    problem = pin_problem(reference, rest)
    assert problem is None, f"{path.name}:{number}: {reference}: {problem}"


@pytest.mark.parametrize(
    ("reference", "rest", "expected"),
    [
        ("actions/checkout@v4", "", "not pinned"),
        ("actions/checkout@11bd719", " # v4.2.2", "not pinned"),
        ("actions/checkout@main", "", "not pinned"),
        ("actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683", "", "no `# vX.Y.Z` comment"),
        ("docker://alpine:3", "", "docker image not pinned"),
        ("actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683", " # v4.2.2", None),
        ("./.github/workflows/cd.yml", "", None),
    ],
)
def test_pin_rule(reference: str, rest: str, expected: str | None) -> None:
    problem = pin_problem(reference, rest)
    if expected is None:
        assert problem is None
    else:
        assert problem is not None
        assert expected in problem


def test_each_action_is_pinned_to_one_sha_and_version_everywhere() -> None:
    seen: dict[str, set[tuple[str, str]]] = {}
    for path in WORKFLOW_FILES:
        for _number, reference, rest in uses_lines(path.read_text(encoding="utf-8")):
            match = PINNED.match(reference)
            comment = VERSION_COMMENT.search(rest)
            if match and comment:
                seen.setdefault(match["action"], set()).add((match["sha"], comment.group(0)))
    assert seen, "no pinned action found"
    drift = {action: pins for action, pins in seen.items() if len(pins) > 1}
    assert not drift, f"one action, several pins: {drift}"


# --- permissions, concurrency, timeouts ----------------------------------------------------------------------


def permissions_problem(permissions: Any) -> str | None:
    """A top-level `permissions` must grant nothing beyond read."""
    if permissions is None:
        return "no top-level permissions (the default token may be read/write)"
    if permissions in ("read-all", {}):
        return None
    if isinstance(permissions, dict) and set(permissions.values()) <= READ_ONLY_VALUES:
        return None
    return f"top-level permissions grant write: {permissions}"


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=[p.name for p in WORKFLOW_FILES])
def test_top_level_permissions_are_empty_or_read_only(path: Path) -> None:
    problem = permissions_problem(load(path).get("permissions"))
    assert problem is None, f"{path.name}: {problem}"


@pytest.mark.parametrize(
    ("permissions", "ok"),
    [({}, True), ({"contents": "read"}, True), (None, False), ({"contents": "write"}, False), ("write-all", False)],
)
def test_permissions_rule(permissions: Any, ok: bool) -> None:
    assert (permissions_problem(permissions) is None) is ok


@pytest.mark.parametrize(("workflow", "job_name", "job"), all_jobs(), ids=[f"{w}:{j}" for w, j, _ in all_jobs()])
def test_every_job_states_its_permissions(workflow: str, job_name: str, job: dict[str, Any]) -> None:
    assert "permissions" in job, f"{workflow}: job {job_name} has no explicit permissions"
    permissions = job["permissions"]
    assert isinstance(permissions, dict), f"{workflow}: job {job_name}: use a map, not {permissions!r}"
    if permissions.get("id-token") == "write":
        # OIDC is for jobs that assume an AWS role, or that call a workflow whose jobs do.
        assumes_role = any(
            str(step.get("uses", "")).startswith("aws-actions/configure-aws-credentials@")
            for step in job.get("steps", [])
        )
        assert assumes_role or "uses" in job, f"{workflow}: job {job_name} gets id-token: write without using it"
    writes = sorted(scope for scope, level in permissions.items() if level == "write")
    assert set(writes) <= {"id-token", "pull-requests"}, f"{workflow}: job {job_name} may write {writes}"


@pytest.mark.parametrize(("workflow", "job_name", "job"), all_jobs(), ids=[f"{w}:{j}" for w, j, _ in all_jobs()])
def test_every_job_has_a_timeout(workflow: str, job_name: str, job: dict[str, Any]) -> None:
    if "uses" in job:  # a call of a reusable workflow: its own jobs carry the timeout
        return
    assert isinstance(job.get("timeout-minutes"), int), f"{workflow}: job {job_name} has no timeout-minutes"


@pytest.mark.parametrize(("workflow", "job_name", "job"), all_jobs(), ids=[f"{w}:{j}" for w, j, _ in all_jobs()])
def test_checkouts_do_not_keep_the_token(workflow: str, job_name: str, job: dict[str, Any]) -> None:
    for step in job.get("steps", []):
        if str(step.get("uses", "")).startswith("actions/checkout@"):
            assert step.get("with", {}).get("persist-credentials") is False, f"{workflow}:{job_name}"


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=[p.name for p in WORKFLOW_FILES])
def test_concurrency_is_set(path: Path) -> None:
    workflow = load(path)
    if "concurrency" in workflow:
        return
    # A reusable workflow sets it per job (the caller's group would otherwise be shared).
    for name, job in jobs_of(workflow).items():
        assert "concurrency" in job, f"{path.name}: neither the workflow nor job {name} has a concurrency group"
        assert job["concurrency"].get("cancel-in-progress") is False, f"{path.name}:{name} may be cancelled"


def test_main_is_never_cancelled_mid_run() -> None:
    for name in ("ci.yml", "terraform.yml"):
        cancel = load(WORKFLOWS_DIR / name)["concurrency"]["cancel-in-progress"]
        assert cancel == "${{ github.event_name == 'pull_request' }}", name


# --- CI ----------------------------------------------------------------------------------------------------------


def ci() -> dict[str, Any]:
    return load(WORKFLOWS_DIR / "ci.yml")


def test_ci_runs_on_pull_requests_and_pushes() -> None:
    on = triggers(ci())
    assert "pull_request" in on
    assert "push" in on


def test_ci_runs_lint_and_the_full_test_command() -> None:
    jobs = jobs_of(ci())
    runs = {name: " ".join(str(s.get("run", "")) for s in job.get("steps", [])) for name, job in jobs.items()}
    assert "make lint" in runs["lint"]
    assert re.search(r"\bmake test\b", runs["test"])
    assert "actionlint" in runs["workflows"]
    assert "hadolint" in runs["workflows"]


def test_ci_builds_both_images_with_gha_cache_and_no_push() -> None:
    job = jobs_of(ci())["images"]
    services = {entry["service"] for entry in job["strategy"]["matrix"]["include"]}
    assert services == {"api", "consumer"}
    (build,) = [s for s in job["steps"] if str(s.get("uses", "")).startswith("docker/build-push-action@")]
    assert build["with"]["push"] is False
    assert build["with"]["file"] == "docker/${{ matrix.service }}.Dockerfile"
    assert build["with"]["cache-from"].startswith("type=gha")
    assert build["with"]["cache-to"].startswith("type=gha")


def test_ci_deploys_only_main_after_every_check() -> None:
    jobs = jobs_of(ci())
    checks = {"lint", "test", "workflows", "images"}
    for name in ("deploy-dev", "deploy-prod"):
        job = jobs[name]
        assert job["uses"] == "./.github/workflows/cd.yml"
        assert checks <= set(job["needs"])
        assert "github.event_name == 'push'" in job["if"]
        assert "github.ref == 'refs/heads/main'" in job["if"]
        assert job["permissions"] == {"contents": "read", "id-token": "write"}
    assert jobs["deploy-prod"]["with"]["environment"] == "prod"
    assert "deploy-dev" in jobs["deploy-prod"]["needs"]


# --- CD ----------------------------------------------------------------------------------------------------------


def cd_job() -> dict[str, Any]:
    return jobs_of(load(WORKFLOWS_DIR / "cd.yml"))["deploy"]


def test_cd_is_called_or_dispatched_never_on_its_own() -> None:
    on = triggers(load(WORKFLOWS_DIR / "cd.yml"))
    assert set(on) == {"workflow_call", "workflow_dispatch"}
    assert cd_job()["if"] == "github.ref == 'refs/heads/main'"


def test_cd_uses_oidc_in_a_github_environment() -> None:
    job = cd_job()
    assert job["permissions"] == {"contents": "read", "id-token": "write"}
    assert job["environment"]["name"] == "${{ inputs.environment }}"
    (aws,) = [s for s in job["steps"] if str(s.get("uses", "")).startswith("aws-actions/configure-aws-credentials@")]
    assert aws["with"]["role-to-assume"] == "${{ vars.AWS_ROLE_ARN }}"
    assert "aws-access-key-id" not in aws["with"]
    assert any(str(s.get("uses", "")).startswith("aws-actions/amazon-ecr-login@") for s in job["steps"])


def test_cd_pushes_both_images_with_the_commit_sha_as_the_one_tag() -> None:
    job = cd_job()
    assert job["env"]["IMAGE_TAG"] == "${{ github.sha }}"
    builds = [s for s in job["steps"] if str(s.get("uses", "")).startswith("docker/build-push-action@")]
    assert {b["with"]["file"] for b in builds} == {"docker/api.Dockerfile", "docker/consumer.Dockerfile"}
    for build in builds:
        assert build["with"]["push"] is True
        tags = build["with"]["tags"].split(",")
        assert len(tags) == 1
        assert tags[0].endswith(":${{ env.IMAGE_TAG }}"), tags
        assert "latest" not in tags[0]


def test_cd_deploys_the_chart_with_that_one_tag() -> None:
    job = cd_job()
    (deploy,) = [s for s in job["steps"] if "helm upgrade" in str(s.get("run", ""))]
    script = deploy["run"]
    assert 'helm upgrade --install "$RELEASE" "$CHART"' in script
    assert "--atomic" in script
    assert "--wait" in script
    assert script.count('image.tag="$IMAGE_TAG"') == 1
    assert "api.image.tag" not in script
    assert "consumer.image.tag" not in script
    assert job["env"]["RELEASE"] == "email-ingest"
    assert job["env"]["CHART"] == "helm/email-ingest"


def test_cd_order_kubeconfig_deploy_smoke() -> None:
    steps = cd_job()["steps"]
    runs = [str(s.get("run", "")) for s in steps]

    def index(fragment: str) -> int:
        return next(i for i, run in enumerate(runs) if fragment in run)

    pushes = [i for i, s in enumerate(steps) if str(s.get("uses", "")).startswith("docker/build-push-action@")]
    assert max(pushes) < index("aws eks update-kubeconfig") < index("helm upgrade") < index("scripts/smoke.py")
    rollback = index("helm rollback")
    assert rollback > index("scripts/smoke.py")
    assert "steps.smoke.outcome == 'failure'" in steps[rollback]["if"]


def test_chart_values_named_by_cd_exist() -> None:
    values_path = REPO_ROOT / "helm" / "email-ingest" / "values.yaml"
    values = yaml.safe_load(values_path.read_text(encoding="utf-8"))
    assert "tag" in values["image"]
    assert "registry" in values["image"]
    assert "repository" in values["api"]["image"]
    assert "repository" in values["consumer"]["image"]


# --- Terraform -----------------------------------------------------------------------------------------------


def test_terraform_plans_pull_requests_and_applies_main_behind_environments() -> None:
    workflow = load(WORKFLOWS_DIR / "terraform.yml")
    assert {"pull_request", "push"} <= set(triggers(workflow))
    jobs = jobs_of(workflow)
    check_runs = " ".join(str(s.get("run", "")) for s in jobs["check"]["steps"])
    assert "terraform fmt -check" in check_runs
    assert "validate" in check_runs
    assert "github.event_name == 'pull_request'" in jobs["plan"]["if"]
    assert jobs["comment"]["permissions"] == {"pull-requests": "write"}
    assert any(str(s.get("uses", "")).startswith("actions/github-script@") for s in jobs["comment"]["steps"])
    assert "pull-requests" not in jobs["plan"]["permissions"], "the job running PR code gets no write token"
    assert jobs["apply-prod"]["needs"] == "apply-dev"
    for name, env in (("apply-dev", "dev"), ("apply-prod", "prod")):
        assert jobs[name]["uses"] == "./.github/workflows/terraform-apply.yml"
        assert jobs[name]["with"]["environment"] == env
        assert "refs/heads/main" in jobs[name]["if"]
    apply = jobs_of(load(WORKFLOWS_DIR / "terraform-apply.yml"))["apply"]
    assert apply["environment"]["name"] == "${{ inputs.environment }}"
    runs = [str(s.get("run", "")) for s in apply["steps"]]
    assert any("apply -no-color -auto-approve tfplan" in run for run in runs), "apply the plan that was shown"


# --- YAML style ------------------------------------------------------------------------------------------------

YAMLLINT_CONFIG = (
    "{extends: default, rules: {line-length: {max: 120}, document-start: disable, truthy: {check-keys: false}}}"
)


@pytest.mark.integration
def test_yamllint_is_clean() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "yamllint", "-f", "parsable", "-d", YAMLLINT_CONFIG, ".github"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "warning" not in completed.stdout, completed.stdout


@pytest.mark.tools
def test_ci_lint_installer_passes_shellcheck() -> None:
    shellcheck = require_tool("shellcheck")
    run_tool([shellcheck, "-x", "scripts/tools/install-ci-lint.sh"])
