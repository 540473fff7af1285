"""Terraform and the Helm chart agree: the `helm_values` output is a values file that helm/email-ingest accepts, and
the service accounts the IRSA trust policies name are the ones the chart creates.

`modules/email-ingest` builds the output as `yamlencode(local.helm_values)`. The tests walk that object literal (parsed
with python-hcl2), put the variables' defaults in place of `var.*` and realistic placeholders in place of what is only
known after an apply (queue URLs, role ARNs), then:

- validate the document, merged over the chart's defaults as Helm merges it, against `values.schema.json`;
- render the chart with it (through Terraform's own `yamlencode`) the way `.github/workflows/cd.yml` deploys, and
  check the ConfigMaps, the service accounts and the Service.
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.terraform.hcl import ENVS_DIR, MODULES_DIR, Config, load_dir, parse_text, terraform_cli
from tests.tooling import REPO_ROOT, TOOLS_DIR, require_tool, run_tool

CHART = REPO_ROOT / "helm" / "email-ingest"
CD_WORKFLOW = REPO_ROOT / ".github" / "workflows" / "cd.yml"
STACK = MODULES_DIR / "email-ingest"

ACCOUNT = "123456789012"
REGION = "eu-west-1"
# What the references resolve to after an apply of envs/dev with the default variables.
PLACEHOLDERS: dict[str, Any] = {
    "data.aws_region.current.id": REGION,
    "module.queue.queue_url": f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/email-ingest-dev-emails",
    "module.queue.dlq_url": f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/email-ingest-dev-emails-dlq",
    "module.bucket.bucket_id": f"email-ingest-dev-emails-{ACCOUNT}",
    "module.secret.parameter_name": "/email-ingest/dev/api-token",
    "module.iam.api_role_arn": f"arn:aws:iam::{ACCOUNT}:role/email-ingest-dev-api",
    "module.iam.consumer_role_arn": f"arn:aws:iam::{ACCOUNT}:role/email-ingest-dev-consumer",
    "local.ecr_registry": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com",
    "local.ecr_repositories.api": "email-ingest-api",
    "local.ecr_repositories.consumer": "email-ingest-consumer",
    # With the default operator_service_account ("email-ingest-redrive") the operator role exists.
    "local.clients_path": "/email-ingest/dev/clients",
    "local.redrive_enabled": True,
    "local.redrive_service_account": "email-ingest-redrive",
    "local.redrive_role_arn": f"arn:aws:iam::{ACCOUNT}:role/email-ingest-dev-operator",
    # batch_limits defaults to {}: every optional attribute is null, and the chart then sets no variable.
    "var.batch_limits.max_bytes": None,
    "var.batch_limits.max_emails": None,
    "var.batch_limits.max_seconds": None,
    "var.batch_limits.max_held_bytes": None,
    'var.tracing_endpoint != ""': False,
}

_REFERENCE = re.compile(r"^\$\{([^{}]+)\}$")


################################################################################
# From the HCL object literal to a values document
################################################################################


def resolve(value: Any, config: Config, problems: list[str], where: str = "helm_values") -> Any:
    """`value` with every `${reference}` replaced: a placeholder, a variable's default or a local, recursively."""
    if isinstance(value, dict):
        return {key: resolve(item, config, problems, f"{where}.{key}") for key, item in value.items()}
    if isinstance(value, list):
        return [resolve(item, config, problems, f"{where}[{i}]") for i, item in enumerate(value)]
    if not isinstance(value, str) or "${" not in value:
        return value
    match = _REFERENCE.match(value)
    expression = match.group(1).strip() if match else value
    if expression in PLACEHOLDERS:
        return PLACEHOLDERS[expression]
    if variable := re.fullmatch(r"var\.(\w+)", expression):
        body = config.variables.get(variable.group(1))
        if body is None or "default" not in body:
            problems.append(f"{where}: {value} has no default to stand in for it")
            return None
        return body["default"]
    if (local := re.fullmatch(r"local\.(\w+)", expression)) and local.group(1) in config.locals:
        return resolve(config.locals[local.group(1)], config, problems, where)
    problems.append(f"{where}: no placeholder for {value} (add one to PLACEHOLDERS in {Path(__file__).name})")
    return None


def helm_values_document(config: Config) -> tuple[dict[str, Any], list[str]]:
    problems: list[str] = []
    output = config.outputs.get("helm_values", {}).get("value")
    if output != "${yamlencode(local.helm_values)}":
        problems.append(f"output helm_values is {output!r}, not yamlencode(local.helm_values)")
    literal = config.locals.get("helm_values")
    if not isinstance(literal, dict):
        return {}, [*problems, "local.helm_values is not an object literal"]
    document = resolve(literal, config, problems)
    assert isinstance(document, dict)
    return document, problems


def helm_merge(defaults: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Helm's coalescing of a values file over the chart's values: maps merge, anything else replaces, null deletes."""
    merged = copy.deepcopy(defaults)
    for key, value in overrides.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = helm_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def schema_problems(document: dict[str, Any]) -> list[str]:
    """What values.schema.json rejects in `document` merged over values.yaml (what `helm install` validates)."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    validator = jsonschema.Draft7Validator(schema)
    return [
        f"{'.'.join(str(p) for p in error.absolute_path) or '<root>'}: {error.message}"
        for error in sorted(validator.iter_errors(helm_merge(defaults, document)), key=str)
    ]


def helm_values_problems(config: Config) -> list[str]:
    document, problems = helm_values_document(config)
    return problems + schema_problems(document)


@pytest.fixture(scope="module")
def stack() -> Config:
    return load_dir(STACK)


@pytest.fixture(scope="module")
def document(stack: Config) -> dict[str, Any]:
    values, problems = helm_values_document(stack)
    assert problems == []
    return values


def test_helm_values_match_the_chart_schema(stack: Config) -> None:
    assert helm_values_problems(stack) == []


def test_helm_values_set_every_aws_value_and_role(document: dict[str, Any]) -> None:
    # The schema accepts a document that leaves things out; Terraform must fill in everything it knows.
    assert set(document["aws"]) == {
        "region",
        "sqsQueueUrl",
        "sqsDlqUrl",
        "s3Bucket",
        "tokenParameterName",
        "tokenParameterPath",
    }
    for component in ("api", "consumer"):
        assert document[component]["serviceAccount"]["roleArn"] == PLACEHOLDERS[f"module.iam.{component}_role_arn"]
        assert document[component]["image"]["repository"]
    assert document["image"]["registry"]
    assert document["api"]["service"] == {"type": "NodePort", "nodePort": 30080}
    assert document["api"]["config"]["tokenRotationGraceSeconds"] == 900
    assert document["redrive"]["serviceAccount"]["roleArn"] == PLACEHOLDERS["local.redrive_role_arn"]


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_env_roots_pass_the_output_through(env: str) -> None:
    output = load_dir(ENVS_DIR / env).outputs["helm_values"]
    assert output["value"] == "${module.email_ingest.helm_values}"


def _stack_text() -> str:
    return "\n".join(path.read_text() for path in sorted(STACK.glob("*.tf")))


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        pytest.param("sqsQueueUrl        =", "sqsQueueURL        =", "sqsQueueURL", id="misspelt-aws-key"),
        pytest.param("roleArn = module.iam.api_role_arn", "rolearn = module.iam.api_role_arn", "rolearn", id="nested"),
        pytest.param(
            "    image = {\n      registry",
            "    namespace = var.namespace\n    image = {\n      registry",
            "namespace",
            id="unknown-top-level-key",
        ),
        pytest.param('type     = "NodePort"', 'type     = "LoadBalancer"', "LoadBalancer", id="bad-enum"),
        pytest.param("nodePort = var.api_node_port", "nodePort = 8080", "8080", id="port-out-of-range"),
        pytest.param(
            "sqsDlqUrl          = module.queue.dlq_url",
            "sqsDlqUrl          = module.queue.dlq_arn",
            "module.queue.dlq_arn",
            id="unknown-reference",
        ),
    ],
)
def test_the_check_catches_a_broken_helm_values(old: str, new: str, expected: str) -> None:
    text = _stack_text()
    assert old in text
    problems = helm_values_problems(parse_text(text.replace(old, new, 1)))
    assert any(expected in problem for problem in problems), problems


################################################################################
# Rendered by the chart, as CD deploys it
################################################################################


def _cd_deploy() -> tuple[str, str, list[str]]:
    """Release name, default namespace and the `--set-string KEY=` keys of the deploy step of cd.yml."""
    workflow = yaml.safe_load(CD_WORKFLOW.read_text())
    job = workflow["jobs"]["deploy"]
    namespace = re.search(r"\|\|\s*'([a-z0-9-]+)'", job["env"]["K8S_NAMESPACE"])
    assert namespace, job["env"]["K8S_NAMESPACE"]
    script = next(step["run"] for step in job["steps"] if step.get("id") == "deploy")
    return job["env"]["RELEASE"], namespace.group(1), re.findall(r"--set-string ([\w.]+)=", script)


def _helm_env() -> dict[str, str]:
    return {"HELM_PLUGINS": str(TOOLS_DIR / "helm-plugins")}


def _yamlencode(document: dict[str, Any], tmp_path: Path) -> str:
    """The document as Terraform's yamlencode writes it (`terraform console` needs no providers for that)."""
    (tmp_path / "doc.json").write_text(json.dumps(document))
    (tmp_path / "empty.tfrc").write_text("")
    completed = subprocess.run(
        [terraform_cli(), "console"],
        input='yamlencode(jsondecode(file("doc.json")))\n',
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={
            **os.environ,
            "TF_CLI_CONFIG_FILE": str(tmp_path / "empty.tfrc"),
            "CHECKPOINT_DISABLE": "1",
            "TF_IN_AUTOMATION": "1",
        },
    )
    lines = completed.stdout.strip().splitlines()
    if completed.returncode != 0 or len(lines) < 3 or lines[0] != "<<EOT" or lines[-1] != "EOT":
        pytest.fail(f"terraform console exited {completed.returncode}\n{completed.stdout}\n{completed.stderr}")
    return "\n".join(lines[1:-1]) + "\n"


def _render(release: str, namespace: str, *args: str) -> list[dict[str, Any]]:
    helm = require_tool("helm")
    result = run_tool([helm, "template", release, str(CHART), "--namespace", namespace, *args], env=_helm_env())
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def _by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == kind}


def _contract_names() -> dict[str, set[str]]:
    """Env var names per service in docs/contract.md: the common ones, the service's table, its port and host."""
    text = (REPO_ROOT / "docs" / "contract.md").read_text()
    configuration = text.split("## Configuration")[1]
    common = set(re.findall(r"`(AWS_[A-Z_]+|LOG_LEVEL)`", configuration.split("API:")[0]))
    api_part = configuration.split("\nAPI:\n")[1].split("\nConsumer:\n")[0]
    consumer_part = configuration.split("\nConsumer:\n")[1].split("\n## ")[0]

    def table(part: str) -> set[str]:
        return set(re.findall(r"^\| `([A-Z_0-9]+)`", part, re.MULTILINE))

    return {
        "api": common | table(api_part) | {"API_PORT", "API_HOST"},
        "consumer": common | table(consumer_part) | {"CONSUMER_PORT", "CONSUMER_HOST"},
    }


@pytest.fixture(scope="module")
def rendered(document: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """The chart rendered like the deploy step of cd.yml: Terraform's values file, then the workflow's --set-strings."""
    tmp_path = tmp_path_factory.mktemp("helm-values")
    values_file = tmp_path / "values-dev.generated.yaml"
    values_file.write_text(_yamlencode(document, tmp_path))
    release, namespace, set_keys = _cd_deploy()
    cd_values = {
        "image.registry": PLACEHOLDERS["local.ecr_registry"],
        "api.image.repository": "email-ingest-api",
        "consumer.image.repository": "email-ingest-consumer",
        "image.tag": "0123abcd",
    }
    assert set(set_keys) == set(cd_values), f"cd.yml sets {set_keys}: update this test"
    sets = [arg for key in set_keys for arg in ("--set-string", f"{key}={cd_values[key]}")]
    return _render(release, namespace, "--values", str(values_file), *sets)


@pytest.mark.tools
def test_terraform_values_reach_the_configmaps(rendered: list[dict[str, Any]]) -> None:
    configmaps = _by_kind(rendered, "ConfigMap")
    api, consumer = configmaps["email-ingest-api"]["data"], configmaps["email-ingest-consumer"]["data"]
    for env in (api, consumer):
        assert env["AWS_REGION"] == REGION
        assert env["SQS_QUEUE_URL"] == PLACEHOLDERS["module.queue.queue_url"]
    assert api["TOKEN_PARAMETER_NAME"] == PLACEHOLDERS["module.secret.parameter_name"]
    assert api["TOKEN_ROTATION_GRACE_SECONDS"] == "900"
    assert consumer["SQS_DLQ_URL"] == PLACEHOLDERS["module.queue.dlq_url"]
    assert consumer["S3_BUCKET"] == PLACEHOLDERS["module.bucket.bucket_id"]
    assert consumer["S3_KEY_PREFIX"] == "emails/"
    contract = _contract_names()
    assert {"SQS_DLQ_URL", "TOKEN_ROTATION_GRACE_SECONDS"} <= contract["consumer"] | contract["api"], "parsing broke"
    assert set(api) <= contract["api"], set(api) - contract["api"]
    assert set(consumer) <= contract["consumer"], set(consumer) - contract["consumer"]


@pytest.mark.tools
def test_terraform_values_give_each_service_account_its_role(rendered: list[dict[str, Any]], stack: Config) -> None:
    accounts = _by_kind(rendered, "ServiceAccount")
    expected = {
        stack.variables["api_service_account"]["default"]: PLACEHOLDERS["module.iam.api_role_arn"],
        stack.variables["consumer_service_account"]["default"]: PLACEHOLDERS["module.iam.consumer_role_arn"],
        stack.variables["operator_service_account"]["default"]: PLACEHOLDERS["local.redrive_role_arn"],
    }
    assert {name: sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] for name, sa in accounts.items()} == (
        expected
    )
    deployments = _by_kind(rendered, "Deployment")
    assert deployments["email-ingest-api"]["spec"]["template"]["spec"]["serviceAccountName"] == "email-ingest-api"
    images = {name: d["spec"]["template"]["spec"]["containers"][0]["image"] for name, d in deployments.items()}
    registry = PLACEHOLDERS["local.ecr_registry"]
    assert images == {
        "email-ingest-api": f"{registry}/email-ingest-api:0123abcd",
        "email-ingest-consumer": f"{registry}/email-ingest-consumer:0123abcd",
    }
    assert _by_kind(rendered, "Job") == {}, "the redrive Job stays off"


@pytest.mark.tools
def test_terraform_values_expose_the_api_on_the_load_balancers_node_port(rendered: list[dict[str, Any]]) -> None:
    service = _by_kind(rendered, "Service")["email-ingest-api"]["spec"]
    ingress = load_dir(MODULES_DIR / "ingress").variables
    assert service["type"] == "NodePort"
    assert [port["nodePort"] for port in service["ports"]] == [ingress["node_port"]["default"]]


################################################################################
# Service account names: the IRSA trust policies and the chart
################################################################################


@pytest.mark.tools
def test_trust_policy_defaults_are_the_chart_names_for_the_cd_release() -> None:
    """Without names in the values, the chart names the service accounts after the release: for the release and
    namespace CD uses, those are the names (and the namespace) the IAM roles trust by default."""
    release, namespace, _ = _cd_deploy()
    docs = _render(
        release,
        namespace,
        "--values",
        str(CHART / "ci" / "minimal-values.yaml"),
        "--set",
        "redrive.enabled=true",
    )
    rendered = {
        doc["metadata"]["labels"]["app.kubernetes.io/component"]: (
            doc["metadata"]["namespace"],
            doc["metadata"]["name"],
        )
        for doc in docs
        if doc["kind"] == "ServiceAccount"
    }
    for module in ("iam", "email-ingest"):
        defaults = {name: body.get("default") for name, body in load_dir(MODULES_DIR / module).variables.items()}
        trusted = {
            "api": (defaults["namespace"], defaults["api_service_account"]),
            "consumer": (defaults["namespace"], defaults["consumer_service_account"]),
            "redrive": (defaults["namespace"], defaults["operator_service_account"]),
        }
        assert rendered == trusted, module


def test_irsa_trust_names_the_service_account_variables() -> None:
    iam = load_dir(MODULES_DIR / "iam")
    accounts = iam.locals["service_accounts"]
    for role, variable in (("api", "api"), ("consumer", "consumer"), ("operator", "operator")):
        assert f"{role} = var.{variable}_service_account" in accounts, accounts
    assume = next(d for d in iam.data_of_type("aws_iam_policy_document") if d.name == "irsa_assume")
    subjects = [c["values"] for c in assume.body["statement"][0]["condition"] if c["variable"].endswith(":sub")]
    assert subjects == [["system:serviceaccount:${var.namespace}:${each.value}"]]
