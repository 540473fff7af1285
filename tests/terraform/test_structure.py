"""Layout and conventions of terraform/ (terraform-aws-modules style), the env roots and what feeds the Helm chart."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tests.terraform.hcl import (
    ENVS_DIR,
    MODULES_DIR,
    TERRAFORM_DIR,
    load_dir,
    module_dirs,
    parse_text,
    rel,
    terraform_dirs,
)
from tests.tooling import REPO_ROOT

EXPECTED_MODULES = {"network", "eks", "queue", "bucket", "secret", "iam", "ecr", "ingress", "email-ingest"}
MODULE_FILES = ("main.tf", "variables.tf", "outputs.tf", "versions.tf")
ENVS = ("dev", "prod")


def test_all_modules_are_there() -> None:
    assert {path.name for path in module_dirs()} >= EXPECTED_MODULES
    assert {path.name for path in ENVS_DIR.iterdir() if path.is_dir()} == set(ENVS)


@pytest.mark.parametrize("module", module_dirs(), ids=lambda p: p.name)
def test_module_has_the_standard_files_and_an_example(module: Path) -> None:
    missing = [name for name in MODULE_FILES if not (module / name).is_file()]
    example = module / "examples" / "complete"
    missing += [f"examples/complete/{name}" for name in MODULE_FILES if not (example / name).is_file()]
    assert missing == []
    # The example really calls this module.
    sources = [body.get("source") for body in load_dir(example).modules.values()]
    assert "../../" in sources, sources


def _variables_problems(text: str) -> list[str]:
    config = parse_text(text)
    problems = [f"variable {name}: no type" for name, body in config.variables.items() if not body.get("type")]
    problems += [
        f"variable {name}: no description"
        for name, body in config.variables.items()
        if not str(body.get("description", "")).strip()
    ]
    problems += [
        f"output {name}: no description"
        for name, body in config.outputs.items()
        if not str(body.get("description", "")).strip()
    ]
    return problems


@pytest.mark.parametrize("directory", terraform_dirs(), ids=rel)
def test_every_variable_has_a_type_and_a_description(directory: Path) -> None:
    problems = [f"{tf.name}: {p}" for tf in sorted(directory.glob("*.tf")) for p in _variables_problems(tf.read_text())]
    assert problems == []


def test_variable_check_rejects_untyped_or_undocumented() -> None:
    assert _variables_problems('variable "a" {\n description = "x"\n}') == ["variable a: no type"]
    assert _variables_problems('variable "a" {\n type = string\n}') == ["variable a: no description"]
    assert _variables_problems('output "o" {\n value = 1\n}') == ["output o: no description"]


@pytest.mark.parametrize("directory", terraform_dirs(), ids=rel)
def test_versions_pin_terraform_and_the_aws_provider(directory: Path) -> None:
    terraform_blocks = load_dir(directory).terraform
    required_version = [block["required_version"] for block in terraform_blocks if "required_version" in block]
    # >= 1.11: write-only arguments (the token parameter); 1.10 brought the S3 backend's native lock file.
    assert required_version == [">= 1.11"]
    providers = [p for block in terraform_blocks for entry in block.get("required_providers", []) for p in [entry]]
    aws = [entry["aws"] for entry in providers if "aws" in entry]
    assert aws, "no required_providers.aws"
    assert aws[0]["source"] == "hashicorp/aws"
    # max_message_size of 1 MiB needs provider 6.8.
    assert re.fullmatch(r"(>=|~>) 6\.(8|9|\d\d)", aws[0]["version"]), aws[0]["version"]


@pytest.mark.parametrize("env", ENVS)
def test_env_uses_an_s3_backend_with_native_locking(env: str) -> None:
    config = load_dir(ENVS_DIR / env)
    backends = [b for block in config.terraform for entry in block.get("backend", []) for b in [entry]]
    assert len(backends) == 1
    assert "s3" in backends[0]
    s3 = backends[0]["s3"]
    assert s3["use_lockfile"] is True
    assert s3["encrypt"] is True
    assert "dynamodb_table" not in s3
    assert s3["key"] == f"email-ingest/{env}/terraform.tfstate"
    assert (ENVS_DIR / env / "backend.hcl.example").is_file()


@pytest.mark.parametrize("env", ENVS)
def test_env_tfvars_example_sets_every_required_variable(env: str) -> None:
    config = load_dir(ENVS_DIR / env)
    example = ENVS_DIR / env / "terraform.tfvars.example"
    parse_text(example.read_text(), rel(example))  # valid HCL
    assigned = set(re.findall(r"^(\w+)\s*=", example.read_text(), re.MULTILINE))
    required = {name for name, body in config.variables.items() if "default" not in body}
    assert required <= assigned, required - assigned
    assert assigned <= set(config.variables), assigned - set(config.variables)


HELM_OUTPUTS = {
    "region",
    "queue_url",
    "dlq_url",
    "bucket_name",
    "token_parameter_name",
    "api_role_arn",
    "consumer_role_arn",
    "operator_role_arn",
    "github_actions_role_arn",
    "helm_values",
}


@pytest.mark.parametrize("env", ENVS)
def test_env_outputs_feed_the_helm_chart(env: str) -> None:
    outputs = load_dir(ENVS_DIR / env).outputs
    assert set(outputs) >= HELM_OUTPUTS, HELM_OUTPUTS - set(outputs)


def test_ingress_targets_the_api_nodeport_health_path() -> None:
    ingress = load_dir(MODULES_DIR / "ingress")
    assert ingress.variables["node_port"]["default"] == 30080
    assert ingress.variables["health_check_path"]["default"] == "/healthz"
    target_group = ingress.of_type("aws_lb_target_group")[0].body
    assert target_group["port"] == "${var.node_port}"
    assert target_group["health_check"][0]["path"] == "${var.health_check_path}"
    assert load_dir(MODULES_DIR / "email-ingest").variables["api_node_port"]["default"] == 30080


def test_load_balancer_forwards_only_the_public_api_paths() -> None:
    """/metrics, /openapi.json and the probes share the API's port: the HTTPS listener answers 404 unless a rule
    forwards the path, and the rule forwards the chart's public paths only (api.ingress.paths, as ALB patterns)."""
    ingress = load_dir(MODULES_DIR / "ingress")
    listeners = {block.name: block.body for block in ingress.of_type("aws_lb_listener")}
    (default_action,) = listeners["https"]["default_action"]
    assert default_action["type"] == "fixed-response"
    assert default_action["fixed_response"][0]["status_code"] == "404"
    (rule,) = ingress.of_type("aws_lb_listener_rule")
    assert rule.body["action"][0]["target_group_arn"] == "${aws_lb_target_group.api.arn}"
    assert rule.body["condition"][0]["path_pattern"][0]["values"] == "${var.public_paths}"
    chart_paths = yaml.safe_load((REPO_ROOT / "helm" / "email-ingest" / "values.yaml").read_text())["api"]["ingress"]
    assert ingress.variables["public_paths"]["default"] == [f"{path}/*" for path in chart_paths["paths"]]


def test_readme_documents_the_choices() -> None:
    readme = (TERRAFORM_DIR / "README.md").read_text()
    for heading in ("Layout", "Bootstrap", "Ingress", "IRSA", "Token rotation", "Helm"):
        assert re.search(rf"^#+ .*{heading}", readme, re.MULTILINE | re.IGNORECASE), heading
    for module in EXPECTED_MODULES:
        assert re.search(rf"\b{module}/ ", readme), f"{module} missing from the layout"
