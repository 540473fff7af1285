provider "aws" {
  region = var.region
}

module "network" {
  source = "../../"

  name               = "email-ingest-example"
  cidr               = "10.42.0.0/16"
  azs                = var.azs
  single_nat_gateway = true
  cluster_name       = "email-ingest-example"

  flow_logs_retention_days = 30

  tags = {
    Project = "email-ingest"
    Example = "network-complete"
  }
}
