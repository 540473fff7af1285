# State in S3 with S3's native lock file (no DynamoDB table). The bucket and region come from
# backend.hcl (copy backend.hcl.example): terraform init -backend-config=backend.hcl
terraform {
  backend "s3" {
    key          = "email-ingest/prod/terraform.tfstate"
    encrypt      = true
    use_lockfile = true
  }
}
