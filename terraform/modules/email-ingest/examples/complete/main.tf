provider "aws" {
  region = var.region
}

module "email_ingest" {
  source = "../../"

  name        = "email-ingest-example"
  environment = "example"

  azs                = ["${var.region}a", "${var.region}b"]
  single_nat_gateway = true
  node_capacity_type = "SPOT"
  node_min_size      = 1
  node_desired_size  = 2

  eks_endpoint_public_access_cidrs = ["203.0.113.0/24"]
  certificate_arn                  = var.certificate_arn
  deletion_protection              = false
  force_destroy                    = true
  log_retention_days               = 30

  clients = {
    acme = { description = "Token of the example client acme." }
  }

  github_repository   = "example-org/email-ingest"
  github_environments = ["example"]
}
