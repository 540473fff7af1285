# Creates the S3 bucket that holds the state of envs/dev and envs/prod (one per account). This root keeps its
# own state locally: apply it once per account, then keep terraform.tfstate safe (or move it into the new
# bucket with a backend block and terraform init -migrate-state, see terraform/README.md).

provider "aws" {
  region              = var.region
  allowed_account_ids = var.allowed_account_ids

  default_tags {
    tags = {
      ManagedBy  = "terraform"
      Repository = "email-ingest"
    }
  }
}

data "aws_caller_identity" "current" {}

module "state_bucket" {
  source = "../modules/bucket"

  name = coalesce(var.bucket_name, "email-ingest-tfstate-${data.aws_caller_identity.current.account_id}")

  # State files are small and read on every plan: no transitions; old versions are the undo history.
  transition_to_ia_days              = null
  transition_to_glacier_ir_days      = null
  noncurrent_version_expiration_days = var.noncurrent_version_expiration_days

  tags = {
    Purpose = "terraform-state"
  }
}
