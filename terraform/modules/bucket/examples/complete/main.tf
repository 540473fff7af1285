provider "aws" {
  region = var.region
}

data "aws_caller_identity" "current" {}

module "bucket" {
  source = "../../"

  name               = "email-ingest-example-${data.aws_caller_identity.current.account_id}"
  lifecycle_prefixes = ["emails/", "batches/"]
  expiration_days    = 730
  force_destroy      = true

  tags = {
    Project = "email-ingest"
    Example = "bucket-complete"
  }
}
