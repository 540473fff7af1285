provider "aws" {
  region = var.region
}

module "secret" {
  source = "../../"

  name      = "/email-ingest/example/api-token"
  kms_alias = "email-ingest-example-api-token"

  tags = {
    Project = "email-ingest"
    Example = "secret-complete"
  }
}
