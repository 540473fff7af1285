provider "aws" {
  region = var.region

  # Refuse to run against the wrong account (a mixed-up profile is the classic prod accident).
  allowed_account_ids = var.allowed_account_ids

  default_tags {
    tags = {
      ManagedBy  = "terraform"
      Repository = "email-ingest"
    }
  }
}
