provider "aws" {
  region = var.region
}

module "ecr" {
  source = "../../"

  repository_names = ["email-ingest-example-api", "email-ingest-example-consumer"]
  max_image_count  = 20
  force_delete     = true

  tags = {
    Project = "email-ingest"
    Example = "ecr-complete"
  }
}
