provider "aws" {
  region = var.region
}

module "network" {
  source = "../../../network"

  name               = "email-ingest-eks-example"
  cidr               = "10.43.0.0/16"
  azs                = var.azs
  single_nat_gateway = true
  cluster_name       = "email-ingest-eks-example"
}

module "eks" {
  source = "../../"

  name       = "email-ingest-eks-example"
  subnet_ids = module.network.private_subnet_ids

  endpoint_public_access_cidrs = ["203.0.113.0/24"]
  node_instance_types          = ["m7i.large", "m6i.large"]
  node_capacity_type           = "SPOT"
  node_min_size                = 1
  node_desired_size            = 2
  cluster_log_retention_days   = 30

  tags = {
    Project = "email-ingest"
    Example = "eks-complete"
  }
}
