provider "aws" {
  region = var.region
}

module "network" {
  source = "../../../network"

  name               = "email-ingest-lb-example"
  cidr               = "10.44.0.0/16"
  azs                = var.azs
  single_nat_gateway = true
  cluster_name       = "email-ingest-lb-example"
}

module "eks" {
  source = "../../../eks"

  name       = "email-ingest-lb-example"
  subnet_ids = module.network.private_subnet_ids
}

module "ingress" {
  source = "../../"

  name                    = "email-ingest-lb-example"
  vpc_id                  = module.network.vpc_id
  subnet_ids              = module.network.public_subnet_ids
  certificate_arn         = var.certificate_arn
  node_security_group_id  = module.eks.cluster_security_group_id
  autoscaling_group_names = { default = module.eks.node_autoscaling_group_name }
  deletion_protection     = false

  tags = {
    Project = "email-ingest"
    Example = "ingress-complete"
  }
}
