provider "aws" {
  region = var.region
}

# SSE-SQS (the default).
module "queue" {
  source = "../../"

  name                       = "email-ingest-example"
  visibility_timeout_seconds = 120
  max_receive_count          = 5

  tags = {
    Project = "email-ingest"
    Example = "queue-complete"
  }
}

# SSE-KMS with a customer-managed key.
resource "aws_kms_key" "queue" {
  #checkov:skip=CKV2_AWS_64:The example relies on the default key policy (account root); the real envs use SSE-SQS.
  description             = "email-ingest example queue key"
  enable_key_rotation     = true
  deletion_window_in_days = 7
}

module "queue_kms" {
  source = "../../"

  name              = "email-ingest-example-kms"
  kms_master_key_id = aws_kms_key.queue.arn

  tags = {
    Project = "email-ingest"
    Example = "queue-complete"
  }
}
