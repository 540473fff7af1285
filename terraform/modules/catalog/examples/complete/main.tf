provider "aws" {
  region = var.region
}

module "bucket" {
  source = "../../../bucket"

  name          = "email-ingest-example-catalog"
  force_destroy = true
}

module "catalog" {
  source = "../../"

  name          = "email-ingest-example"
  bucket_name   = module.bucket.bucket_id
  kms_key_arn   = module.bucket.kms_key_arn
  force_destroy = true

  tags = {
    Project = "email-ingest"
    Example = "catalog-complete"
  }
}
