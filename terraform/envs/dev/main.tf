module "email_ingest" {
  source = "../../modules/email-ingest"

  name        = "email-ingest-dev"
  environment = "dev"

  # Cost options: two AZs, one NAT gateway, Spot nodes, short log retention, destroyable storage.
  vpc_cidr           = var.vpc_cidr
  azs                = var.azs
  single_nat_gateway = true
  log_retention_days = 30

  kubernetes_version               = var.kubernetes_version
  eks_endpoint_public_access_cidrs = var.eks_endpoint_public_access_cidrs
  node_instance_types              = ["m7i.large", "m6i.large", "m5.large"]
  node_capacity_type               = "SPOT"
  node_min_size                    = 1
  node_max_size                    = 4
  node_desired_size                = 2

  email_expiration_days = 30
  force_destroy         = true
  deletion_protection   = false

  certificate_arn     = var.certificate_arn
  ingress_cidr_blocks = var.ingress_cidr_blocks

  operator_principal_arns  = var.operator_principal_arns
  github_repository        = var.github_repository
  github_environments      = ["dev"]
  github_branches          = ["main"]
  github_oidc_provider_arn = var.github_oidc_provider_arn

  tags = var.tags
}
