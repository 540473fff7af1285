data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

################################################################################
# Customer-managed KMS key of the parameter
################################################################################

data "aws_iam_policy_document" "kms" {
  #checkov:skip=CKV_AWS_109:A key policy's Resource "*" means this key only; the root statement lets IAM policies grant use of it.
  #checkov:skip=CKV_AWS_111:A key policy's Resource "*" means this key only; the root statement lets IAM policies grant use of it.
  #checkov:skip=CKV_AWS_356:A key policy's Resource "*" means this key only.
  statement {
    sid       = "EnableIAMPolicies"
    actions   = ["kms:*"]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = ["arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root"]
    }
  }
}

resource "aws_kms_key" "this" {
  description             = "Encrypts the SSM parameter ${var.name}"
  enable_key_rotation     = true
  deletion_window_in_days = var.kms_deletion_window_in_days
  policy                  = data.aws_iam_policy_document.kms.json

  tags = var.tags
}

resource "aws_kms_alias" "this" {
  name          = "alias/${var.kms_alias}"
  target_key_id = aws_kms_key.this.key_id
}

################################################################################
# The parameter
#
# The real token never passes through Terraform. The parameter is created with a random value that nobody
# knows (an ephemeral resource: it exists only during the run) written through the write-only argument
# value_wo, which Terraform never records in the plan or the state, and which the provider does not read
# back on refresh. So the parameter exists, encrypted with the key, but no request can authenticate until
# an operator writes the first real token with the rotation procedure (terraform/README.md), and later
# out-of-band rotations cause neither drift nor a copy of the token in the state.
################################################################################

# The AWS provider's own generator (Secrets Manager's GetRandomPassword), so the module needs no other provider.
# Not the data source of the same name: its value is not sensitive and would be stored in the state.
ephemeral "aws_secretsmanager_random_password" "initial" {
  password_length     = 48
  exclude_punctuation = true
}

resource "aws_ssm_parameter" "this" {
  name        = var.name
  description = var.description
  type        = "SecureString"
  tier        = "Standard"
  key_id      = aws_kms_key.this.arn

  value_wo = ephemeral.aws_secretsmanager_random_password.initial.random_password
  # Never bump this: a new version would overwrite the live token with a random one.
  value_wo_version = 1

  tags = var.tags
}

################################################################################
# One parameter per API client, under clients_path (TOKEN_PARAMETER_PATH)
#
# Created exactly as the single token's: a random value nobody knows, through the write-only value_wo, so no
# client's token is ever in a plan or the state; the operator writes the real one (docs/runbook.md, "Clients").
################################################################################

ephemeral "aws_secretsmanager_random_password" "client" {
  for_each = var.clients

  password_length     = 48
  exclude_punctuation = true
}

resource "aws_ssm_parameter" "client" {
  for_each = var.clients

  name        = "${var.clients_path}/${each.key}"
  description = coalesce(each.value.description, "Token of the email-ingest client ${each.key}. Rotate with put-parameter (docs/runbook.md); never through Terraform.")
  type        = "SecureString"
  tier        = "Standard"
  key_id      = aws_kms_key.this.arn

  value_wo = ephemeral.aws_secretsmanager_random_password.client[each.key].random_password
  # Never bump this: a new version would overwrite the client's live token with a random one.
  value_wo_version = 1

  tags = merge(var.tags, { EmailIngestClient = each.key })

  lifecycle {
    precondition {
      condition     = var.clients_path != null
      error_message = "clients needs clients_path: the path the API reads (TOKEN_PARAMETER_PATH)."
    }
  }
}
