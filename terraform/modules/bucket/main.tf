data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  create_kms_key = var.sse_algorithm == "aws:kms" && var.kms_key_arn == null
  kms_key_arn    = var.sse_algorithm != "aws:kms" ? null : (local.create_kms_key ? aws_kms_key.this[0].arn : var.kms_key_arn)

  # Transitions by storage class, without those on or after the expiration day (pointless, and S3 rejects them).
  transitions = {
    for storage_class, days in {
      STANDARD_IA = var.transition_to_ia_days
      GLACIER_IR  = var.transition_to_glacier_ir_days
    } : storage_class => days
    if days != null && (var.expiration_days == null || try(days < var.expiration_days, false))
  }
}

################################################################################
# Customer-managed KMS key (only when SSE-KMS is chosen and no key is given)
################################################################################

data "aws_iam_policy_document" "kms" {
  count = local.create_kms_key ? 1 : 0

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
  count = local.create_kms_key ? 1 : 0

  description             = "SSE-KMS key of the S3 bucket ${var.name}"
  enable_key_rotation     = true
  deletion_window_in_days = var.kms_deletion_window_in_days
  policy                  = data.aws_iam_policy_document.kms[0].json

  tags = var.tags
}

resource "aws_kms_alias" "this" {
  count = local.create_kms_key ? 1 : 0

  name          = "alias/s3/${var.name}"
  target_key_id = aws_kms_key.this[0].key_id
}

################################################################################
# Bucket
################################################################################

resource "aws_s3_bucket" "this" {
  #checkov:skip=CKV_AWS_144:Cross-region replication is a disaster-recovery choice per deployment, not a default; see terraform/README.md.
  #checkov:skip=CKV2_AWS_62:No consumer of S3 event notifications exists; the pipeline's events flow through SQS before the write.
  #checkov:skip=CKV_AWS_18:Server access logging is optional (var.access_log_bucket): the log bucket is account-wide infrastructure.
  bucket        = var.name
  force_destroy = var.force_destroy

  tags = merge(var.tags, { Name = var.name })
}

resource "aws_s3_bucket_ownership_controls" "this" {
  bucket = aws_s3_bucket.this.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "this" {
  bucket = aws_s3_bucket.this.id

  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "this" {
  bucket = aws_s3_bucket.this.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "this" {
  bucket = aws_s3_bucket.this.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = var.sse_algorithm
      kms_master_key_id = local.kms_key_arn
    }
    # An S3 Bucket Key cuts the KMS requests (and their cost) of many small objects by ~99%.
    bucket_key_enabled = var.sse_algorithm == "aws:kms"
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "this" {
  bucket = aws_s3_bucket.this.id

  # Objects under 128 KiB are not transitioned (S3's default minimum size): most emails stay in STANDARD,
  # where they are cheaper than IA's 128 KiB minimum billable size.
  transition_default_minimum_object_size = "all_storage_classes_128K"

  # S3 rejects a rule without an action, and a transition on or after the expiration day.
  dynamic "rule" {
    for_each = length(local.transitions) > 0 || var.expiration_days != null ? var.lifecycle_prefixes : []
    content {
      id     = rule.value == "" ? "current-versions" : "current-versions-${trimsuffix(replace(rule.value, "/", "-"), "-")}"
      status = "Enabled"

      filter {
        prefix = rule.value
      }

      # Also in the bucket-wide rule below; repeated per prefix so that every rule bounds failed uploads.
      abort_incomplete_multipart_upload {
        days_after_initiation = var.abort_incomplete_multipart_upload_days
      }

      dynamic "transition" {
        for_each = local.transitions
        content {
          days          = transition.value
          storage_class = transition.key
        }
      }

      dynamic "expiration" {
        for_each = var.expiration_days == null ? [] : [var.expiration_days]
        content {
          days = expiration.value
        }
      }
    }
  }

  rule {
    id     = "noncurrent-versions-and-uploads"
    status = "Enabled"

    filter {}

    noncurrent_version_expiration {
      noncurrent_days = var.noncurrent_version_expiration_days
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = var.abort_incomplete_multipart_upload_days
    }
  }

  # Lifecycle rules need versioning configured first.
  depends_on = [aws_s3_bucket_versioning.this]

  lifecycle {
    precondition {
      condition = (
        var.transition_to_ia_days == null || var.transition_to_glacier_ir_days == null ||
        try(var.transition_to_glacier_ir_days >= var.transition_to_ia_days + 30, false)
      )
      error_message = "Objects stay at least 30 days in STANDARD_IA: transition_to_glacier_ir_days must be >= transition_to_ia_days + 30."
    }
  }
}

resource "aws_s3_bucket_logging" "this" {
  count = var.access_log_bucket == null ? 0 : 1

  bucket        = aws_s3_bucket.this.id
  target_bucket = var.access_log_bucket
  target_prefix = "${var.name}/"
}

################################################################################
# Bucket policy: deny every request that does not use TLS (and TLS < 1.2)
################################################################################

data "aws_iam_policy_document" "this" {
  source_policy_documents = var.policy_documents

  statement {
    sid     = "DenyInsecureTransport"
    effect  = "Deny"
    actions = ["s3:*"]
    resources = [
      aws_s3_bucket.this.arn,
      "${aws_s3_bucket.this.arn}/*",
    ]

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

  statement {
    sid     = "DenyOutdatedTLS"
    effect  = "Deny"
    actions = ["s3:*"]
    resources = [
      aws_s3_bucket.this.arn,
      "${aws_s3_bucket.this.arn}/*",
    ]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "NumericLessThan"
      variable = "s3:TlsVersion"
      values   = ["1.2"]
    }
  }
}

resource "aws_s3_bucket_policy" "this" {
  bucket = aws_s3_bucket.this.id
  policy = data.aws_iam_policy_document.this.json

  # A policy put before the public access block could be judged public and rejected.
  depends_on = [aws_s3_bucket_public_access_block.this]
}
