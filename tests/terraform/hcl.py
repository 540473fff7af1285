"""Reading the Terraform code with python-hcl2, and the invariant checks the tests run on it.

Each `check_*` function takes a parsed configuration and returns a list of problems (empty when the invariant
holds), so that the tests can run it on the real tree and on small broken snippets alike.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hcl2
from hcl2 import SerializationOptions

from tests.tooling import REPO_ROOT, TOOLS_BIN, require_tool

TERRAFORM_DIR = REPO_ROOT / "terraform"
MODULES_DIR = TERRAFORM_DIR / "modules"
ENVS_DIR = TERRAFORM_DIR / "envs"

_OPTIONS = SerializationOptions(with_comments=False, explicit_blocks=False, strip_string_quotes=True)

Body = dict[str, Any]


@dataclass
class Block:
    """A resource or data block: its type, its name, its body and the file it is in."""

    type: str
    name: str
    body: Body
    path: str

    @property
    def address(self) -> str:
        return f"{self.type}.{self.name} ({self.path})"


@dataclass
class Config:
    """The blocks of one or more .tf files, merged."""

    resources: list[Block] = field(default_factory=list)
    data: list[Block] = field(default_factory=list)
    ephemeral: list[Block] = field(default_factory=list)
    variables: dict[str, Body] = field(default_factory=dict)
    outputs: dict[str, Body] = field(default_factory=dict)
    terraform: list[Body] = field(default_factory=list)
    locals: dict[str, Any] = field(default_factory=dict)
    modules: dict[str, Body] = field(default_factory=dict)

    def of_type(self, resource_type: str) -> list[Block]:
        return [block for block in self.resources if block.type == resource_type]

    def data_of_type(self, data_type: str) -> list[Block]:
        return [block for block in self.data if block.type == data_type]


def _blocks(doc: Body, kind: str, path: str) -> Iterator[Block]:
    for entry in doc.get(kind, []):
        for block_type, named in entry.items():
            for name, body in named.items():
                yield Block(block_type, name, body, path)


def _merge(config: Config, doc: Body, path: str) -> None:
    config.resources.extend(_blocks(doc, "resource", path))
    config.data.extend(_blocks(doc, "data", path))
    config.ephemeral.extend(_blocks(doc, "ephemeral", path))
    for kind, target in (("variable", config.variables), ("output", config.outputs), ("module", config.modules)):
        for entry in doc.get(kind, []):
            target.update(entry)
    for entry in doc.get("locals", []):
        config.locals.update(entry)
    config.terraform.extend(doc.get("terraform", []))


def parse_text(text: str, path: str = "<snippet>") -> Config:
    config = Config()
    _merge(config, hcl2.loads(text, serialization_options=_OPTIONS), path)
    return config


def load_dir(directory: Path) -> Config:
    """All .tf files directly in `directory` (one Terraform module)."""
    config = Config()
    for tf_file in sorted(directory.glob("*.tf")):
        with tf_file.open() as handle:
            _merge(config, hcl2.load(handle, serialization_options=_OPTIONS), str(tf_file.relative_to(REPO_ROOT)))
    return config


def load_tree(root: Path = TERRAFORM_DIR) -> Config:
    """All .tf files under `root`, merged (for invariants that hold everywhere)."""
    config = Config()
    for directory in terraform_dirs(root):
        loaded = load_dir(directory)
        config.resources += loaded.resources
        config.data += loaded.data
        config.ephemeral += loaded.ephemeral
    return config


def terraform_dirs(root: Path = TERRAFORM_DIR) -> list[Path]:
    """Every directory holding .tf files (modules, examples, env roots, bootstrap)."""
    return sorted({path.parent for path in root.rglob("*.tf") if ".terraform" not in path.parts})


def module_dirs() -> list[Path]:
    return sorted(path for path in MODULES_DIR.iterdir() if path.is_dir())


def rel(path: Path) -> str:
    return str(path.relative_to(REPO_ROOT))


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def ref_name(expression: Any, resource_type: str) -> str | None:
    """`aws_sqs_queue.dlq` from "${aws_sqs_queue.dlq.arn}" (or None)."""
    match = re.search(rf"\b{re.escape(resource_type)}\.(\w+)\b", str(expression))
    return match.group(1) if match else None


def _is_off(value: Any) -> bool:
    return value is None or value is False or value in ("", "null", "${null}", "false", "${false}")


################################################################################
# Queues
################################################################################


def check_queues(config: Config) -> list[str]:
    """Every queue is encrypted and long-polls; every queue is either a DLQ or redrives to one with a
    maxReceiveCount; every DLQ allows redrive only from its source queues."""
    problems: list[str] = []
    queues = {block.name: block for block in config.of_type("aws_sqs_queue")}
    sources: dict[str, str] = {}  # source queue -> its DLQ
    for policy in config.of_type("aws_sqs_queue_redrive_policy"):
        source = ref_name(policy.body.get("queue_url"), "aws_sqs_queue")
        text = str(policy.body.get("redrive_policy", ""))
        match = re.search(r"deadLetterTargetArn\s*=\s*([^,}\s]+)", text)
        target = ref_name(match.group(1), "aws_sqs_queue") if match else None
        if source is None or target is None:
            problems.append(f"{policy.address}: cannot tell its source queue and dead-letter target")
            continue
        if not re.search(r"maxReceiveCount\s*=", text):
            problems.append(f"{policy.address}: no maxReceiveCount")
        sources[source] = target
    allowed: dict[str, str] = {}  # DLQ -> redrive allow policy text
    for allow in config.of_type("aws_sqs_queue_redrive_allow_policy"):
        dlq = ref_name(allow.body.get("queue_url"), "aws_sqs_queue")
        if dlq is not None:
            allowed[dlq] = str(allow.body.get("redrive_allow_policy", ""))
    dlqs = set(sources.values())
    for name, queue in queues.items():
        body = queue.body
        if _is_off(body.get("sqs_managed_sse_enabled")) and _is_off(body.get("kms_master_key_id")):
            problems.append(
                f"{queue.address}: no server-side encryption (sqs_managed_sse_enabled or kms_master_key_id)"
            )
        if "receive_wait_time_seconds" not in body:
            problems.append(f"{queue.address}: no long-poll wait (receive_wait_time_seconds)")
        if "redrive_policy" in body:
            problems.append(f"{queue.address}: inline redrive_policy; use aws_sqs_queue_redrive_policy")
        if name in dlqs:
            policy_text = allowed.get(name)
            if policy_text is None:
                problems.append(f"{queue.address}: dead-letter queue without a redrive allow policy")
            elif "byQueue" not in policy_text or not all(
                f"aws_sqs_queue.{source}.arn" in policy_text for source, dlq in sources.items() if dlq == name
            ):
                problems.append(f"{queue.address}: redrive allow policy does not name its source queue(s) byQueue")
        elif name not in sources:
            problems.append(f"{queue.address}: neither a dead-letter queue nor redriven to one")
        elif "visibility_timeout_seconds" not in body:
            problems.append(f"{queue.address}: no explicit visibility timeout")
    return problems


################################################################################
# Buckets
################################################################################


def _statements(document: Block) -> list[Body]:
    statements = [dict(s) for s in as_list(document.body.get("statement"))]
    statements.extend(
        dict(content)
        for dynamic in as_list(document.body.get("dynamic"))
        for content in as_list(dynamic.get("statement", {}).get("content"))
    )
    return statements


def _denies_insecure_transport(statement: Body) -> bool:
    if statement.get("effect") != "Deny":
        return False
    principals = as_list(statement.get("principals"))
    if not any(p.get("type") == "*" or "*" in as_list(p.get("identifiers")) for p in principals):
        return False
    if not any(a in ("s3:*", "*") for a in as_list(statement.get("actions"))):
        return False
    return any(
        c.get("test") == "Bool" and c.get("variable") == "aws:SecureTransport" and as_list(c.get("values")) == ["false"]
        for c in as_list(statement.get("condition"))
    )


def check_buckets(config: Config) -> list[str]:
    """Every bucket blocks public access, enforces bucket-owner ownership, is versioned, encrypted, has lifecycle
    rules and a policy that denies requests without TLS."""
    problems: list[str] = []
    by_bucket: dict[str, dict[str, list[Block]]] = {}
    for block in config.resources:
        if block.type.startswith("aws_s3_bucket_"):
            bucket_name = ref_name(block.body.get("bucket"), "aws_s3_bucket")
            if bucket_name is not None:
                by_bucket.setdefault(bucket_name, {}).setdefault(block.type, []).append(block)
    documents = {block.name: block for block in config.data_of_type("aws_iam_policy_document")}
    for bucket in config.of_type("aws_s3_bucket"):
        parts = by_bucket.get(bucket.name, {})
        where = bucket.address
        pab = parts.get("aws_s3_bucket_public_access_block", [])
        flags = ("block_public_acls", "block_public_policy", "ignore_public_acls", "restrict_public_buckets")
        if not pab or not all(pab[0].body.get(flag) is True for flag in flags):
            problems.append(f"{where}: public access not blocked (all four flags true)")
        ownership = parts.get("aws_s3_bucket_ownership_controls", [])
        if not ownership or as_list(ownership[0].body.get("rule"))[0].get("object_ownership") != "BucketOwnerEnforced":
            problems.append(f"{where}: ownership is not BucketOwnerEnforced")
        versioning = parts.get("aws_s3_bucket_versioning", [])
        if not versioning or as_list(versioning[0].body.get("versioning_configuration"))[0].get("status") != "Enabled":
            problems.append(f"{where}: versioning not enabled")
        if not parts.get("aws_s3_bucket_server_side_encryption_configuration"):
            problems.append(f"{where}: no default encryption")
        if not parts.get("aws_s3_bucket_lifecycle_configuration"):
            problems.append(f"{where}: no lifecycle rules")
        policies = parts.get("aws_s3_bucket_policy", [])
        document_name = ref_name(policies[0].body.get("policy"), "data.aws_iam_policy_document") if policies else None
        document = documents.get(document_name or "")
        if document is None or not any(_denies_insecure_transport(s) for s in _statements(document)):
            problems.append(f"{where}: no bucket policy that denies requests without TLS (aws:SecureTransport)")
    return problems


################################################################################
# IAM
################################################################################

# Actions that support no resource-level permissions, so that Resource "*" is the only possible form.
NON_RESOURCE_ACTIONS = frozenset({"ecr:GetAuthorizationToken", "sts:GetCallerIdentity"})


def key_policy_documents(config: Config) -> set[str]:
    """Names of the policy documents used as KMS key policies (where Resource "*" means the key itself)."""
    return {
        name
        for key in config.of_type("aws_kms_key")
        if (name := ref_name(key.body.get("policy"), "data.aws_iam_policy_document")) is not None
    }


def check_iam(config: Config) -> list[str]:
    """No Allow statement grants "*" actions; Resource "*" only in key policies or for non-resource actions."""
    problems: list[str] = []
    key_policies = key_policy_documents(config)
    for document in config.data_of_type("aws_iam_policy_document"):
        for statement in _statements(document):
            if statement.get("effect", "Allow") != "Allow":
                continue
            actions = [str(a) for a in as_list(statement.get("actions"))]
            resources = [str(r) for r in as_list(statement.get("resources"))]
            label = f"{document.address} statement {statement.get('sid', '?')}"
            if any(a == "*" or (a.endswith(":*") and document.name not in key_policies) for a in actions):
                problems.append(f"{label}: grants wildcard actions {actions}")
            if "*" in resources and document.name not in key_policies and not set(actions) <= NON_RESOURCE_ACTIONS:
                problems.append(f'{label}: Resource "*" for resource-scoped actions {actions}')
            if "*" in actions and "*" in resources:
                problems.append(f"{label}: grants * on *")
    for block in config.resources:
        for attribute in ("policy", "inline_policy", "assume_role_policy"):
            text = str(block.body.get(attribute, ""))
            if re.search(r"""(Action|actions)\s*=\s*\[?\s*"\*"\s*\]?""", text):
                problems.append(f'{block.address}: {attribute} grants Action "*"')
    return problems


def statement_by_sid(config: Config, document_name: str, sid: str) -> Body:
    for document in config.data_of_type("aws_iam_policy_document"):
        if document.name == document_name:
            for statement in _statements(document):
                if statement.get("sid") == sid:
                    return statement
    raise KeyError(f"{document_name}/{sid}")


def granted_actions(config: Config, document_name: str) -> set[str]:
    actions: set[str] = set()
    for document in config.data_of_type("aws_iam_policy_document"):
        if document.name == document_name:
            for statement in _statements(document):
                if statement.get("effect", "Allow") == "Allow":
                    actions.update(str(a) for a in as_list(statement.get("actions")))
    return actions


################################################################################
# The API token
################################################################################


def check_token_stays_out(config: Config) -> list[str]:
    """The token parameter gets its value only through a write-only argument from an ephemeral resource (never in
    the plan, the state or the code), and nothing reads the parameter back into the state."""
    problems: list[str] = []
    ephemeral = {f"ephemeral.{block.type}.{block.name}" for block in config.ephemeral}
    for parameter in config.of_type("aws_ssm_parameter"):
        body = parameter.body
        if body.get("type") == "SecureString":
            problems.extend(
                f"{parameter.address}: sets `{attribute}`, which Terraform stores in its state"
                for attribute in ("value", "insecure_value")
                if attribute in body
            )
            source = str(body.get("value_wo", ""))
            # `name.result`, or `name[each.key].result` for one ephemeral value per instance (the clients' tokens).
            if not any(source.startswith(("${" + name + ".", "${" + name + "[")) for name in ephemeral):
                problems.append(f"{parameter.address}: value_wo does not come from an ephemeral resource ({source!r})")
            if not str(body.get("key_id", "")).startswith("${aws_kms_key."):
                problems.append(f"{parameter.address}: not encrypted with a customer-managed key of this module")
        else:
            problems.append(f"{parameter.address}: type {body.get('type')!r}, not SecureString")
    problems.extend(
        f"{block.address}: a data source reads the parameter's value into the state"
        for block in config.data_of_type("aws_ssm_parameter")
    )
    return problems


def terraform_cli() -> str:
    """terraform where installed, else OpenTofu (built by scripts/tools/install-terraform.sh)."""
    search_path = os.pathsep.join([str(TOOLS_BIN), os.environ.get("PATH", "")])
    for name in ("terraform", "tofu"):
        found = shutil.which(name, path=search_path)
        if found:
            return found
    return require_tool("terraform")
