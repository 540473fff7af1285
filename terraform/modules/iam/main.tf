data "aws_region" "current" {}

locals {
  region = data.aws_region.current.id

  # IRSA: each role trusts exactly one Kubernetes service account through the cluster's OIDC provider.
  service_accounts = merge(
    {
      api      = var.api_service_account
      consumer = var.consumer_service_account
    },
    var.operator_service_account == null ? {} : { operator = var.operator_service_account },
  )

  create_github_oidc_provider = var.github_repository != null && var.github_oidc_provider_arn == null
  github_oidc_provider_arn    = local.create_github_oidc_provider ? aws_iam_openid_connect_provider.github[0].arn : var.github_oidc_provider_arn
  github_subjects = var.github_repository == null ? [] : concat(
    [for env in var.github_environments : "repo:${var.github_repository}:environment:${env}"],
    [for branch in var.github_branches : "repo:${var.github_repository}:ref:refs/heads/${branch}"],
  )

  key_prefix_pattern       = "${var.bucket_arn}/${var.bucket_key_prefix}*"
  batch_key_prefix_pattern = "${var.bucket_arn}/${var.batch_key_prefix}*"
}

data "aws_iam_policy_document" "irsa_assume" {
  for_each = local.service_accounts

  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]

    principals {
      type        = "Federated"
      identifiers = [var.oidc_provider_arn]
    }

    condition {
      test     = "StringEquals"
      variable = "${var.oidc_issuer}:sub"
      values   = ["system:serviceaccount:${var.namespace}:${each.value}"]
    }

    condition {
      test     = "StringEquals"
      variable = "${var.oidc_issuer}:aud"
      values   = ["sts.amazonaws.com"]
    }
  }
}

################################################################################
# API: read the token parameter, publish to the queue
################################################################################

resource "aws_iam_role" "api" {
  name                 = "${var.name}-api"
  description          = "email-ingest API pods (${var.namespace}/${var.api_service_account})"
  assume_role_policy   = data.aws_iam_policy_document.irsa_assume["api"].json
  max_session_duration = 3600

  tags = var.tags
}

data "aws_iam_policy_document" "api" {
  # Every version with its LastModifiedDate (GetParameterHistory, not decrypted): the previous token's grace
  # counts from when SSM recorded the next one, so all pods agree. Then GetParameters decrypts only the
  # versions still accepted (name:version selectors). The API makes no other SSM call.
  statement {
    sid       = "ReadToken"
    actions   = ["ssm:GetParameterHistory", "ssm:GetParameters"]
    resources = [var.token_parameter_arn]
  }

  statement {
    sid       = "DecryptToken"
    actions   = ["kms:Decrypt"]
    resources = [var.token_kms_key_arn]

    # SSM encrypts each SecureString with its ARN as encryption context: this key, for this parameter only.
    condition {
      test     = "StringEquals"
      variable = "kms:EncryptionContext:PARAMETER_ARN"
      values   = [var.token_parameter_arn]
    }
  }

  # The clients under TOKEN_PARAMETER_PATH: GetParametersByPath on the path itself (each client's latest version,
  # decrypted), and the history and versions of the parameters right under it, for a client inside its rotation
  # grace. Decryption is for those parameters only (SSM's encryption context is each parameter's ARN).
  dynamic "statement" {
    for_each = var.client_parameters_path_arn == null ? [] : [var.client_parameters_path_arn]
    content {
      sid       = "ReadClients"
      actions   = ["ssm:GetParametersByPath"]
      resources = [statement.value]
    }
  }

  dynamic "statement" {
    for_each = var.client_parameters_path_arn == null ? [] : [var.client_parameters_path_arn]
    content {
      sid       = "ReadClientHistory"
      actions   = ["ssm:GetParameterHistory", "ssm:GetParameters"]
      resources = ["${statement.value}/*"]
    }
  }

  dynamic "statement" {
    for_each = var.client_parameters_path_arn == null ? [] : [var.client_parameters_path_arn]
    content {
      sid       = "DecryptClients"
      actions   = ["kms:Decrypt"]
      resources = [var.token_kms_key_arn]

      condition {
        test     = "StringLike"
        variable = "kms:EncryptionContext:PARAMETER_ARN"
        values   = ["${statement.value}/*"]
      }
    }
  }

  statement {
    sid = "Publish"
    # sqs:SendMessage also authorises SendMessageBatch.
    actions   = ["sqs:SendMessage"]
    resources = [var.queue_arn]
  }

  dynamic "statement" {
    for_each = var.queue_kms_key_arn == null ? [] : [var.queue_kms_key_arn]
    content {
      sid       = "QueueEncryption"
      actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
      resources = [statement.value]

      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["sqs.${local.region}.amazonaws.com"]
      }
    }
  }
}

resource "aws_iam_role_policy" "api" {
  name   = "email-ingest-api"
  role   = aws_iam_role.api.id
  policy = data.aws_iam_policy_document.api.json
}

################################################################################
# Consumer: drain the queue, store objects under the key prefix
################################################################################

resource "aws_iam_role" "consumer" {
  name                 = "${var.name}-consumer"
  description          = "email-ingest consumer pods (${var.namespace}/${var.consumer_service_account})"
  assume_role_policy   = data.aws_iam_policy_document.irsa_assume["consumer"].json
  max_session_duration = 3600

  tags = var.tags
}

data "aws_iam_policy_document" "consumer" {
  statement {
    sid = "Consume"
    actions = [
      "sqs:ReceiveMessage",
      "sqs:DeleteMessage",
      "sqs:ChangeMessageVisibility",
      "sqs:GetQueueAttributes",
    ]
    resources = [var.queue_arn]
  }

  statement {
    sid       = "DeadLetterDepth"
    actions   = ["sqs:GetQueueAttributes"]
    resources = [var.dlq_arn]
  }

  statement {
    # PutObject with If-None-Match: *: a 412 means the key is taken. Both layouts' prefixes (STORAGE_LAYOUT), so
    # that switching layouts needs no IAM change.
    sid       = "Store"
    actions   = ["s3:PutObject"]
    resources = [local.key_prefix_pattern, local.batch_key_prefix_pattern]
  }

  statement {
    # After a 412, HeadObject (which s3:GetObject allows) reads the digest stored beside the per-email object: the
    # same email (a redelivery) or another under the same Idempotency-Key (stored beside it). Per-email objects
    # only; HeadObject returns metadata and decrypts nothing, so no kms:Decrypt.
    sid       = "CompareStored"
    actions   = ["s3:GetObject"]
    resources = [local.key_prefix_pattern]
  }

  dynamic "statement" {
    for_each = var.bucket_kms_key_arn == null ? [] : [var.bucket_kms_key_arn]
    content {
      # A single-part PutObject under SSE-KMS needs GenerateDataKey only (Decrypt is for multipart and reads).
      sid       = "BucketEncryption"
      actions   = ["kms:GenerateDataKey"]
      resources = [statement.value]

      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["s3.${local.region}.amazonaws.com"]
      }

      # With an S3 Bucket Key the context is the bucket ARN, without one it is the object ARN.
      condition {
        test     = "StringLike"
        variable = "kms:EncryptionContext:aws:s3:arn"
        values   = [var.bucket_arn, local.key_prefix_pattern, local.batch_key_prefix_pattern]
      }
    }
  }

  dynamic "statement" {
    for_each = var.queue_kms_key_arn == null ? [] : [var.queue_kms_key_arn]
    content {
      sid       = "QueueEncryption"
      actions   = ["kms:Decrypt"]
      resources = [statement.value]

      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["sqs.${local.region}.amazonaws.com"]
      }
    }
  }
}

resource "aws_iam_role_policy" "consumer" {
  name   = "email-ingest-consumer"
  role   = aws_iam_role.consumer.id
  policy = data.aws_iam_policy_document.consumer.json
}

################################################################################
# Operator: the DLQ redrive tool (python -m consumer_service.redrive) and the console's DLQ redrive
################################################################################

data "aws_iam_policy_document" "operator_assume" {
  source_policy_documents = var.operator_service_account == null ? [] : [data.aws_iam_policy_document.irsa_assume["operator"].json]

  dynamic "statement" {
    for_each = length(var.operator_principal_arns) == 0 ? [] : [var.operator_principal_arns]
    content {
      sid     = "Operators"
      actions = ["sts:AssumeRole"]

      principals {
        type        = "AWS"
        identifiers = statement.value
      }
    }
  }
}

resource "aws_iam_role" "operator" {
  count = var.operator_service_account != null || length(var.operator_principal_arns) > 0 ? 1 : 0

  name                 = "${var.name}-operator"
  description          = "email-ingest operators: inspect and redrive the dead-letter queue"
  assume_role_policy   = data.aws_iam_policy_document.operator_assume.json
  max_session_duration = 3600

  tags = var.tags
}

data "aws_iam_policy_document" "operator" {
  statement {
    sid = "DrainDeadLetters"
    actions = [
      "sqs:ReceiveMessage",
      "sqs:DeleteMessage",
      "sqs:ChangeMessageVisibility",
      "sqs:GetQueueAttributes",
      "sqs:StartMessageMoveTask",
      "sqs:ListMessageMoveTasks",
      "sqs:CancelMessageMoveTask",
    ]
    resources = [var.dlq_arn]
  }

  statement {
    sid       = "Requeue"
    actions   = ["sqs:SendMessage", "sqs:GetQueueAttributes"]
    resources = [var.queue_arn]
  }

  dynamic "statement" {
    for_each = var.queue_kms_key_arn == null ? [] : [var.queue_kms_key_arn]
    content {
      sid       = "QueueEncryption"
      actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
      resources = [statement.value]

      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["sqs.${local.region}.amazonaws.com"]
      }
    }
  }
}

resource "aws_iam_role_policy" "operator" {
  count = length(aws_iam_role.operator)

  name   = "email-ingest-operator"
  role   = aws_iam_role.operator[0].id
  policy = data.aws_iam_policy_document.operator.json
}

################################################################################
# GitHub Actions: push images to ECR, deploy to EKS
################################################################################

resource "aws_iam_openid_connect_provider" "github" {
  count = local.create_github_oidc_provider ? 1 : 0

  url            = "https://token.actions.githubusercontent.com"
  client_id_list = ["sts.amazonaws.com"]

  tags = var.tags
}

data "aws_iam_policy_document" "github_assume" {
  count = var.github_repository == null ? 0 : 1

  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]

    principals {
      type        = "Federated"
      identifiers = [local.github_oidc_provider_arn]
    }

    condition {
      test     = "StringEquals"
      variable = "token.actions.githubusercontent.com:aud"
      values   = ["sts.amazonaws.com"]
    }

    # Exact subjects only: one repository, and only its listed environments or branches (no wildcards, so
    # a fork or a feature branch cannot assume the role).
    condition {
      test     = "StringEquals"
      variable = "token.actions.githubusercontent.com:sub"
      values   = local.github_subjects
    }
  }
}

resource "aws_iam_role" "github" {
  count = var.github_repository == null ? 0 : 1

  name                 = "${var.name}-github-actions"
  description          = "GitHub Actions of ${var.github_repository}: push images, deploy the chart"
  assume_role_policy   = data.aws_iam_policy_document.github_assume[0].json
  max_session_duration = 3600

  tags = var.tags

  lifecycle {
    precondition {
      condition     = length(local.github_subjects) > 0
      error_message = "Give at least one of github_environments or github_branches."
    }
  }
}

data "aws_iam_policy_document" "github" {
  count = var.github_repository == null ? 0 : 1

  #checkov:skip=CKV_AWS_356:ecr:GetAuthorizationToken supports no resource-level permissions; every other statement names its resources.
  #checkov:skip=CKV_AWS_111:ecr:GetAuthorizationToken supports no resource-level permissions; every other statement names its resources.
  statement {
    sid       = "RegistryLogin"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"]
  }

  statement {
    sid = "PushImages"
    actions = [
      "ecr:BatchCheckLayerAvailability",
      "ecr:BatchGetImage",
      "ecr:CompleteLayerUpload",
      "ecr:DescribeImages",
      "ecr:DescribeImageScanFindings",
      "ecr:GetDownloadUrlForLayer",
      "ecr:InitiateLayerUpload",
      "ecr:PutImage",
      "ecr:UploadLayerPart",
    ]
    resources = var.ecr_repository_arns
  }

  statement {
    # Kubernetes permissions come from the EKS access entry (namespace-scoped), not from IAM.
    sid       = "FindCluster"
    actions   = ["eks:DescribeCluster"]
    resources = [var.eks_cluster_arn]
  }

  statement {
    # The post-deploy smoke test (scripts/smoke.py) reads the email it posted back from the bucket. Objects
    # under the key prefix only; no ListBucket (a key not yet written answers 403, which the test retries).
    sid       = "ReadSmokeTestEmail"
    actions   = ["s3:GetObject"]
    resources = [local.key_prefix_pattern]
  }

  dynamic "statement" {
    for_each = var.bucket_kms_key_arn == null ? [] : [var.bucket_kms_key_arn]
    content {
      # Reading an SSE-KMS object: Decrypt on the bucket key, through S3 and for this bucket only.
      sid       = "DecryptSmokeTestEmail"
      actions   = ["kms:Decrypt"]
      resources = [statement.value]

      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["s3.${local.region}.amazonaws.com"]
      }

      # With an S3 Bucket Key the context is the bucket ARN, without one it is the object ARN.
      condition {
        test     = "StringLike"
        variable = "kms:EncryptionContext:aws:s3:arn"
        values   = [var.bucket_arn, local.key_prefix_pattern]
      }
    }
  }
}

resource "aws_iam_role_policy" "github" {
  count = var.github_repository == null ? 0 : 1

  name   = "email-ingest-ci"
  role   = aws_iam_role.github[0].id
  policy = data.aws_iam_policy_document.github[0].json
}
