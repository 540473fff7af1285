"""Layout and conventions of terraform/ (terraform-aws-modules style), the env roots and what feeds the Helm chart."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

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


def _contract_env_vars() -> dict[str, set[str]]:
    """Env var names per service from docs/contract.md (its Configuration tables)."""
    text = (REPO_ROOT / "docs" / "contract.md").read_text()
    common = set(re.findall(r"`(AWS_[A-Z_]+|LOG_LEVEL)`", text.split("## Configuration")[1].split("API:")[0]))
    api_part = text.split("\nAPI:\n")[1].split("\nConsumer:\n")[0]
    consumer_part = text.split("\nConsumer:\n")[1].split("\n## ")[0]

    def names(part: str) -> set[str]:
        return set(re.findall(r"^\| `([A-Z_0-9]+)`", part, re.MULTILINE))

    return {"api": common | names(api_part), "consumer": common | names(consumer_part)}


def test_helm_values_use_the_contract_env_var_names() -> None:
    contract = _contract_env_vars()
    assert {"SQS_QUEUE_URL", "TOKEN_PARAMETER_NAME"} <= contract["api"], "contract.md parsing broke"
    values = load_dir(MODULES_DIR / "email-ingest").locals["helm_values"]
    required = {
        "api": {"AWS_REGION", "SQS_QUEUE_URL", "TOKEN_PARAMETER_NAME"},
        "consumer": {"AWS_REGION", "SQS_QUEUE_URL", "SQS_DLQ_URL", "S3_BUCKET", "S3_KEY_PREFIX"},
        # The redrive tool ships in the consumer image and reads the consumer's settings.
        "redrive": {"AWS_REGION", "SQS_QUEUE_URL", "SQS_DLQ_URL"},
    }
    for section, needed in required.items():
        env = set(values[section]["env"])
        assert needed <= env, (section, needed - env)
        known = contract["consumer" if section == "redrive" else section]
        assert env <= known, (section, env - known)
    for section in ("api", "consumer"):
        annotations = values[section]["serviceAccount"]["annotations"]
        assert annotations["eks.amazonaws.com/role-arn"] == f"${{module.iam.{section}_role_arn}}"
    assert values["api"]["service"] == {"type": "NodePort", "nodePort": "${var.api_node_port}"}


def test_ingress_targets_the_api_nodeport_health_path() -> None:
    ingress = load_dir(MODULES_DIR / "ingress")
    assert ingress.variables["node_port"]["default"] == 30080
    assert ingress.variables["health_check_path"]["default"] == "/healthz"
    target_group = ingress.of_type("aws_lb_target_group")[0].body
    assert target_group["port"] == "${var.node_port}"
    assert target_group["health_check"][0]["path"] == "${var.health_check_path}"
    assert load_dir(MODULES_DIR / "email-ingest").variables["api_node_port"]["default"] == 30080


def test_readme_documents_the_choices() -> None:
    readme = (TERRAFORM_DIR / "README.md").read_text()
    for heading in ("Layout", "Bootstrap", "Ingress", "IRSA", "Token rotation", "Helm"):
        assert re.search(rf"^#+ .*{heading}", readme, re.MULTILINE | re.IGNORECASE), heading
    for module in EXPECTED_MODULES:
        assert re.search(rf"\b{module}/ ", readme), f"{module} missing from the layout"
