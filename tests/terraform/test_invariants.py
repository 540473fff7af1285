"""Security and correctness invariants of the Terraform code, each checked on the real tree and shown to catch a
broken snippet."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from ingest_common.envelope import largest_message_bytes
from tests.terraform import hcl
from tests.terraform.hcl import MODULES_DIR, TERRAFORM_DIR, Config, load_dir, load_tree, parse_text
from tests.tooling import REPO_ROOT


@pytest.fixture(scope="module")
def tree() -> Config:
    return load_tree()


def test_tree_has_the_resources_the_checks_look_at(tree: Config) -> None:
    # Guards the checks below against passing vacuously (e.g. after a parser change that finds nothing).
    for resource_type in ("aws_sqs_queue", "aws_s3_bucket", "aws_ssm_parameter", "aws_iam_role", "aws_kms_key"):
        assert tree.of_type(resource_type), f"no {resource_type} found under terraform/"
    assert len(tree.data_of_type("aws_iam_policy_document")) >= 10


################################################################################
# Queues
################################################################################


def test_every_queue_has_a_dlq_and_encryption(tree: Config) -> None:
    assert hcl.check_queues(tree) == []


GOOD_QUEUES = """
resource "aws_sqs_queue" "dlq" {
  sqs_managed_sse_enabled   = true
  receive_wait_time_seconds = 20
}
resource "aws_sqs_queue" "main" {
  sqs_managed_sse_enabled    = true
  receive_wait_time_seconds  = 20
  visibility_timeout_seconds = 120
}
resource "aws_sqs_queue_redrive_policy" "main" {
  queue_url      = aws_sqs_queue.main.id
  redrive_policy = jsonencode({ deadLetterTargetArn = aws_sqs_queue.dlq.arn, maxReceiveCount = 5 })
}
resource "aws_sqs_queue_redrive_allow_policy" "dlq" {
  queue_url            = aws_sqs_queue.dlq.id
  redrive_allow_policy = jsonencode({ redrivePermission = "byQueue", sourceQueueArns = [aws_sqs_queue.main.arn] })
}
"""


def test_queue_check_accepts_a_correct_pair() -> None:
    assert hcl.check_queues(parse_text(GOOD_QUEUES)) == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        pytest.param(
            lambda t: t.replace('resource "aws_sqs_queue_redrive_policy" "main"', 'resource "null_resource" "x"'),
            "neither a dead-letter queue nor redriven",
            id="no-redrive-policy",
        ),
        pytest.param(lambda t: t.replace(", maxReceiveCount = 5", ""), "no maxReceiveCount", id="no-max-receive-count"),
        pytest.param(
            lambda t: t.replace("sqs_managed_sse_enabled    = true", "sqs_managed_sse_enabled = false"),
            "no server-side encryption",
            id="main-unencrypted",
        ),
        pytest.param(
            lambda t: t.replace("sqs_managed_sse_enabled   = true\n", "", 1),
            "no server-side encryption",
            id="dlq-unencrypted",
        ),
        pytest.param(
            lambda t: t.replace('resource "aws_sqs_queue_redrive_allow_policy" "dlq"', 'resource "null_resource" "y"'),
            "without a redrive allow policy",
            id="no-redrive-allow-policy",
        ),
        pytest.param(
            lambda t: t.replace("receive_wait_time_seconds  = 20\n", ""), "no long-poll wait", id="no-long-poll"
        ),
    ],
)
def test_queue_check_rejects_broken_queues(change: object, expected: str) -> None:
    assert callable(change)
    problems = hcl.check_queues(parse_text(change(GOOD_QUEUES)))
    assert any(expected in problem for problem in problems), problems


def _default(variables: dict[str, dict[str, object]], name: str) -> float:
    value = variables[name]["default"]
    assert isinstance(value, int | float), (name, value)
    return float(value)


def test_queue_defaults_give_visibility_above_processing_plus_heartbeat_margin() -> None:
    queue = load_dir(MODULES_DIR / "queue")
    stack = load_dir(MODULES_DIR / "email-ingest")
    margin = _default(queue.variables, "heartbeat_margin_seconds")
    for variables, visibility, processing in (
        (queue.variables, "visibility_timeout_seconds", "consumer_max_processing_seconds"),
        (stack.variables, "queue_visibility_timeout_seconds", "consumer_max_processing_seconds"),
    ):
        assert _default(variables, visibility) > _default(variables, processing) + margin
    assert _default(queue.variables, "receive_wait_time_seconds") == 20
    # A valid email's envelope can exceed the old 256 KiB limit: the queue must take the largest one.
    assert _default(queue.variables, "max_message_size") >= largest_message_bytes()
    assert f"var.max_message_size >= {largest_message_bytes()}" in (MODULES_DIR / "queue" / "variables.tf").read_text()
    # And the module enforces the rule for any value, not only for the defaults.
    main_queue = next(block for block in queue.of_type("aws_sqs_queue") if block.name == "this")
    conditions = [p["condition"] for lc in main_queue.body["lifecycle"] for p in lc["precondition"]]
    assert any(
        "var.visibility_timeout_seconds >" in c and "consumer_max_processing_seconds" in c and "heartbeat_margin" in c
        for c in conditions
    )


################################################################################
# Buckets
################################################################################


def test_every_bucket_blocks_public_access_and_denies_plain_http(tree: Config) -> None:
    assert hcl.check_buckets(tree) == []


GOOD_BUCKET = """
resource "aws_s3_bucket" "b" { bucket = "x" }
resource "aws_s3_bucket_public_access_block" "b" {
  bucket                  = aws_s3_bucket.b.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}
resource "aws_s3_bucket_ownership_controls" "b" {
  bucket = aws_s3_bucket.b.id
  rule { object_ownership = "BucketOwnerEnforced" }
}
resource "aws_s3_bucket_versioning" "b" {
  bucket = aws_s3_bucket.b.id
  versioning_configuration { status = "Enabled" }
}
resource "aws_s3_bucket_server_side_encryption_configuration" "b" { bucket = aws_s3_bucket.b.id }
resource "aws_s3_bucket_lifecycle_configuration" "b" { bucket = aws_s3_bucket.b.id }
data "aws_iam_policy_document" "b" {
  statement {
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = ["*"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}
resource "aws_s3_bucket_policy" "b" {
  bucket = aws_s3_bucket.b.id
  policy = data.aws_iam_policy_document.b.json
}
"""


def test_bucket_check_accepts_a_correct_bucket() -> None:
    assert hcl.check_buckets(parse_text(GOOD_BUCKET)) == []


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("restrict_public_buckets = true", "restrict_public_buckets = false", "public access not blocked"),
        ('resource "aws_s3_bucket_public_access_block"', 'resource "null_resource"', "public access not blocked"),
        ('values   = ["false"]', 'values   = ["true"]', "denies requests without TLS"),
        ('effect    = "Deny"', 'effect    = "Allow"', "denies requests without TLS"),
        ('resource "aws_s3_bucket_policy"', 'resource "null_resource"', "denies requests without TLS"),
        ('"BucketOwnerEnforced"', '"ObjectWriter"', "BucketOwnerEnforced"),
        ('status = "Enabled"', 'status = "Suspended"', "versioning not enabled"),
        ('resource "aws_s3_bucket_lifecycle_configuration"', 'resource "null_resource"', "no lifecycle rules"),
    ],
)
def test_bucket_check_rejects_broken_buckets(old: str, new: str, expected: str) -> None:
    assert old in GOOD_BUCKET
    problems = hcl.check_buckets(parse_text(GOOD_BUCKET.replace(old, new)))
    assert any(expected in problem for problem in problems), problems


################################################################################
# IAM
################################################################################


def test_no_iam_statement_grants_wildcards(tree: Config) -> None:
    assert hcl.check_iam(tree) == []


@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        ('actions = ["*"]\n resources = ["*"]', "* on *"),
        ('actions = ["s3:*"]\n resources = ["arn:aws:s3:::b/*"]', "wildcard actions"),
        ('actions = ["s3:PutObject"]\n resources = ["*"]', 'Resource "*"'),
    ],
)
def test_iam_check_rejects_wildcards(statement: str, expected: str) -> None:
    snippet = f'data "aws_iam_policy_document" "p" {{\n statement {{\n {statement}\n }}\n}}\n'
    problems = hcl.check_iam(parse_text(snippet))
    assert any(expected in problem for problem in problems), problems


def test_iam_check_rejects_wildcards_in_jsonencoded_policies() -> None:
    snippet = 'resource "aws_iam_role_policy" "p" {\n policy = jsonencode({ Statement = [{ Action = "*" }] })\n}\n'
    assert hcl.check_iam(parse_text(snippet))


def test_iam_check_allows_registry_login_and_key_policies() -> None:
    snippet = """
data "aws_iam_policy_document" "login" {
  statement {
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"]
  }
}
data "aws_iam_policy_document" "key" {
  statement {
    actions   = ["kms:*"]
    resources = ["*"]
  }
}
resource "aws_kms_key" "k" { policy = data.aws_iam_policy_document.key.json }
"""
    assert hcl.check_iam(parse_text(snippet)) == []


@pytest.fixture(scope="module")
def iam() -> Config:
    return load_dir(MODULES_DIR / "iam")


def test_api_may_only_read_the_token_and_publish(iam: Config) -> None:
    assert hcl.granted_actions(iam, "api") == {
        "ssm:GetParameterHistory",
        "ssm:GetParameters",
        "ssm:GetParametersByPath",
        "kms:Decrypt",
        "sqs:SendMessage",
        "kms:GenerateDataKey",
    }
    assert hcl.statement_by_sid(iam, "api", "ReadToken")["resources"] == ["${var.token_parameter_arn}"]
    decrypt = hcl.statement_by_sid(iam, "api", "DecryptToken")
    assert decrypt["resources"] == ["${var.token_kms_key_arn}"]
    assert decrypt["condition"][0]["variable"] == "kms:EncryptionContext:PARAMETER_ARN"
    assert hcl.statement_by_sid(iam, "api", "Publish")["resources"] == ["${var.queue_arn}"]


def test_api_may_read_the_clients_path_and_only_the_parameters_right_under_it(iam: Config) -> None:
    assert hcl.statement_by_sid(iam, "api", "ReadClients") == {
        "sid": "ReadClients",
        "actions": ["ssm:GetParametersByPath"],
        "resources": ["${statement.value}"],
    }
    assert hcl.statement_by_sid(iam, "api", "ReadClientHistory")["resources"] == ["${statement.value}/*"]
    decrypt = hcl.statement_by_sid(iam, "api", "DecryptClients")
    assert decrypt["resources"] == ["${var.token_kms_key_arn}"]
    assert decrypt["condition"][0]["variable"] == "kms:EncryptionContext:PARAMETER_ARN"
    assert decrypt["condition"][0]["values"] == ["${statement.value}/*"]


def test_client_tokens_never_reach_plan_or_state() -> None:
    secret = load_dir(MODULES_DIR / "secret")
    (client,) = [r for r in secret.of_type("aws_ssm_parameter") if r.name == "client"]
    assert "value" not in client.body, "a value argument would put the token in the plan and the state"
    assert client.body["value_wo"] == "${ephemeral.aws_secretsmanager_random_password.client[each.key].random_password}"
    assert client.body["value_wo_version"] == 1
    assert client.body["type"] == "SecureString"


def test_consumer_may_only_consume_and_put_under_the_prefix(iam: Config) -> None:
    actions = hcl.granted_actions(iam, "consumer")
    assert {a for a in actions if a.startswith("s3:")} == {"s3:PutObject", "s3:GetObject"}, (
        "PutObject with If-None-Match, and HeadObject of what a 412 found: nothing else"
    )
    assert hcl.statement_by_sid(iam, "consumer", "Store")["resources"] == [
        "${local.key_prefix_pattern}",
        "${local.batch_key_prefix_pattern}",
    ]
    compare = hcl.statement_by_sid(iam, "consumer", "CompareStored")
    assert (compare["actions"], compare["resources"]) == (["s3:GetObject"], ["${local.key_prefix_pattern}"]), (
        "HeadObject of per-email objects only: batches are never read back"
    )
    assert iam.locals["key_prefix_pattern"] == "${var.bucket_arn}/${var.bucket_key_prefix}*"
    assert iam.locals["batch_key_prefix_pattern"] == "${var.bucket_arn}/${var.batch_key_prefix}*"
    assert iam.variables["bucket_key_prefix"]["default"] == "emails/"
    assert iam.variables["batch_key_prefix"]["default"] == "batches/"
    assert set(hcl.statement_by_sid(iam, "consumer", "Consume")["actions"]) == {
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:ChangeMessageVisibility",
        "sqs:GetQueueAttributes",
    }
    dlq = hcl.statement_by_sid(iam, "consumer", "DeadLetterDepth")
    assert (dlq["actions"], dlq["resources"]) == (["sqs:GetQueueAttributes"], ["${var.dlq_arn}"])
    assert not any(a.startswith("sqs:Send") for a in actions), "the consumer never publishes"


def test_operator_role_redrives_from_the_dlq_to_the_queue(iam: Config) -> None:
    drain = hcl.statement_by_sid(iam, "operator", "DrainDeadLetters")
    assert drain["resources"] == ["${var.dlq_arn}"]
    assert {"sqs:ReceiveMessage", "sqs:DeleteMessage"} <= set(drain["actions"])
    requeue = hcl.statement_by_sid(iam, "operator", "Requeue")
    assert requeue["resources"] == ["${var.queue_arn}"]
    assert "sqs:SendMessage" in requeue["actions"]


def test_github_role_may_read_back_stored_emails_and_nothing_more(iam: Config) -> None:
    """The post-deploy smoke test (scripts/smoke.py) GETs the email it posted from the bucket, under the key prefix
    only, and decrypts it with the bucket key through S3 only."""
    actions = hcl.granted_actions(iam, "github")
    assert {a for a in actions if a.startswith("s3:")} == {"s3:GetObject"}
    assert {a for a in actions if a.startswith("kms:")} == {"kms:Decrypt"}
    read = hcl.statement_by_sid(iam, "github", "ReadSmokeTestEmail")
    assert (read["actions"], read["resources"]) == (["s3:GetObject"], ["${local.key_prefix_pattern}"])
    decrypt = hcl.statement_by_sid(iam, "github", "DecryptSmokeTestEmail")
    assert (decrypt["actions"], decrypt["resources"]) == (["kms:Decrypt"], ["${statement.value}"])
    document = next(d for d in iam.data_of_type("aws_iam_policy_document") if d.name == "github")
    (dynamic,) = [d["statement"] for d in hcl.as_list(document.body.get("dynamic"))]
    assert dynamic["for_each"] == "${var.bucket_kms_key_arn == null ? [] : [var.bucket_kms_key_arn]}"
    conditions = {c["variable"]: c for c in decrypt["condition"]}
    assert conditions["kms:ViaService"]["values"] == ["s3.${local.region}.amazonaws.com"]
    assert conditions["kms:EncryptionContext:aws:s3:arn"]["values"] == [
        "${var.bucket_arn}",
        "${local.key_prefix_pattern}",
    ]


def test_service_accounts_default_to_the_contract_names(iam: Config) -> None:
    # What the chart names them for the release "email-ingest" (tests/terraform/test_helm_values.py renders it).
    expected = {
        "namespace": "email-ingest",
        "api_service_account": "email-ingest-api",
        "consumer_service_account": "email-ingest-consumer",
        "operator_service_account": "email-ingest-redrive",
    }
    for module in (iam, load_dir(MODULES_DIR / "email-ingest")):
        assert {name: module.variables[name].get("default") for name in expected} == expected


def test_github_role_trusts_exact_subjects_of_one_repository(iam: Config) -> None:
    assume = next(d for d in iam.data_of_type("aws_iam_policy_document") if d.name == "github_assume")
    conditions = {c["variable"]: c for c in assume.body["statement"][0]["condition"]}
    subject = conditions["token.actions.githubusercontent.com:sub"]
    # StringEquals (not StringLike with wildcards): a fork or another branch cannot assume the role.
    assert subject["test"] == "StringEquals"
    assert subject["values"] == "${local.github_subjects}"
    assert conditions["token.actions.githubusercontent.com:aud"]["values"] == ["sts.amazonaws.com"]
    subjects = str(iam.locals["github_subjects"])
    assert "repo:${var.github_repository}:environment:${env}" in subjects
    assert "repo:${var.github_repository}:ref:refs/heads/${branch}" in subjects


################################################################################
# The API token
################################################################################


def test_token_value_never_passes_through_terraform(tree: Config) -> None:
    assert hcl.check_token_stays_out(tree) == []


@pytest.mark.parametrize(
    ("snippet", "expected"),
    [
        ('resource "aws_ssm_parameter" "t" {\n type = "SecureString"\n value = "s3cr3t"\n}', "sets `value`"),
        (
            'resource "aws_ssm_parameter" "t" {\n type = "SecureString"\n value_wo = var.token\n}',
            "not come from an ephemeral resource",
        ),
        ('resource "aws_ssm_parameter" "t" {\n type = "String"\n}', "not SecureString"),
        ('data "aws_ssm_parameter" "t" {\n name = "/x"\n}', "into the state"),
    ],
)
def test_token_check_rejects_leaks(snippet: str, expected: str) -> None:
    problems = hcl.check_token_stays_out(parse_text(snippet))
    assert any(expected in problem for problem in problems), problems


def _repository_files(directory: Path) -> list[Path]:
    """Files git would commit under `directory`: tracked ones and untracked ones that .gitignore does not hide."""
    listing = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z", str(directory)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return [REPO_ROOT / name for name in listing.stdout.split("\0") if name]


@pytest.mark.integration
def test_no_state_or_real_tfvars_in_the_repository() -> None:
    files = _repository_files(TERRAFORM_DIR)
    assert any(path.name == "terraform.tfvars.example" for path in files), "git listing found nothing"
    leaks = [
        str(path.relative_to(REPO_ROOT))
        for path in files
        if re.search(r"\.tfstate|\.tfvars$|\.tfvars\.json$|^backend\.hcl$|\.tfplan$", path.name)
    ]
    assert leaks == []


@pytest.mark.integration
def test_gitignore_keeps_local_terraform_files_out() -> None:
    names = ["terraform.tfstate", "terraform.tfstate.backup", "terraform.tfvars", "backend.hcl", "tfplan"]
    paths = [str(TERRAFORM_DIR / "envs" / "dev" / name) for name in names]
    ignored = subprocess.run(
        ["git", "check-ignore", "--no-index", *paths],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    assert sorted(ignored) == sorted(paths)


# What a real token would look like next to a token-ish name: a long literal without interpolation.
_TOKEN_LITERAL = re.compile(r"""(?i)\b\w*(token|secret|password)\w*\s*=\s*"(?!\$\{)[A-Za-z0-9+/_=.-]{16,}""")


def test_no_token_like_literal_in_terraform_files() -> None:
    hits = [
        f"{path.relative_to(REPO_ROOT)}: {match.group(0)}"
        for path in sorted(TERRAFORM_DIR.rglob("*"))
        if path.is_file() and path.suffix in {".tf", ".example", ".hcl"}
        for match in _TOKEN_LITERAL.finditer(path.read_text())
    ]
    assert hits == []
    assert _TOKEN_LITERAL.search('api_token = "Zm9vYmFyYmF6cXV4cXV1eA"'), "the pattern must catch a literal token"
