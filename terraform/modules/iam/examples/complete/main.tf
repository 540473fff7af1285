provider "aws" {
  region = var.region
}

data "aws_caller_identity" "current" {}

module "queue" {
  source = "../../../queue"

  name = "email-ingest-iam-example"
}

module "bucket" {
  source = "../../../bucket"

  name          = "email-ingest-iam-example-${data.aws_caller_identity.current.account_id}"
  force_destroy = true
}

module "secret" {
  source = "../../../secret"

  name      = "/email-ingest/iam-example/api-token"
  kms_alias = "email-ingest-iam-example-api-token"
}

module "ecr" {
  source = "../../../ecr"

  repository_names = ["email-ingest-iam-example-api", "email-ingest-iam-example-consumer"]
  force_delete     = true
}

module "iam" {
  source = "../../"

  name              = "email-ingest-iam-example"
  oidc_provider_arn = var.oidc_provider_arn
  oidc_issuer       = var.oidc_issuer

  queue_arn           = module.queue.queue_arn
  dlq_arn             = module.queue.dlq_arn
  bucket_arn          = module.bucket.bucket_arn
  bucket_kms_key_arn  = module.bucket.kms_key_arn
  token_parameter_arn = module.secret.parameter_arn
  token_kms_key_arn   = module.secret.kms_key_arn

  github_repository   = var.github_repository
  github_environments = ["dev"]
  ecr_repository_arns = values(module.ecr.repository_arns)
  eks_cluster_arn     = var.eks_cluster_arn

  tags = {
    Project = "email-ingest"
    Example = "iam-complete"
  }
}
