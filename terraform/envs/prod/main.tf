module "email_ingest" {
  source = "../../modules/email-ingest"

  name        = "email-ingest-prod"
  environment = "prod"

  # Three AZs with a NAT gateway each: losing an AZ loses neither nodes nor egress.
  vpc_cidr           = var.vpc_cidr
  azs                = var.azs
  single_nat_gateway = false
  log_retention_days = 365

  kubernetes_version               = var.kubernetes_version
  eks_endpoint_public_access_cidrs = var.eks_endpoint_public_access_cidrs
  node_instance_types              = ["m7i.large"]
  node_capacity_type               = "ON_DEMAND"
  node_min_size                    = 3
  node_max_size                    = 12
  node_desired_size                = 3

  email_expiration_days = var.email_expiration_days
  force_destroy         = false
  deletion_protection   = true

  certificate_arn        = var.certificate_arn
  ingress_cidr_blocks    = var.ingress_cidr_blocks
  alb_access_logs_bucket = var.alb_access_logs_bucket
  web_acl_arn            = var.web_acl_arn

  operator_principal_arns = var.operator_principal_arns
  github_repository       = var.github_repository
  # Only jobs of the protected "prod" environment (required reviewers) may deploy to prod.
  github_environments      = ["prod"]
  github_oidc_provider_arn = var.github_oidc_provider_arn

  tags = var.tags
}
