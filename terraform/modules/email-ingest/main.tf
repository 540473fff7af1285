# The whole AWS side of email-ingest for one environment: envs/dev and envs/prod call this module with their
# own sizes, so the two environments differ only in variables.

data "aws_caller_identity" "current" {}
data "aws_region" "current" {}

locals {
  bucket_name      = coalesce(var.bucket_name, "${var.name}-emails-${data.aws_caller_identity.current.account_id}")
  token_parameter  = coalesce(var.token_parameter_name, "/email-ingest/${var.environment}/api-token")
  clients_path     = coalesce(var.client_parameters_path, "/email-ingest/${var.environment}/clients")
  ecr_repositories = { for service in ["api", "consumer"] : service => "${var.ecr_repository_prefix}email-ingest-${service}" }

  tags = merge(var.tags, {
    Project     = "email-ingest"
    Environment = var.environment
  })
}

module "network" {
  source = "../network"

  name                     = var.name
  cidr                     = var.vpc_cidr
  azs                      = var.azs
  single_nat_gateway       = var.single_nat_gateway
  cluster_name             = var.name
  flow_logs_retention_days = var.log_retention_days

  tags = local.tags
}

module "eks" {
  source = "../eks"

  name                         = var.name
  kubernetes_version           = var.kubernetes_version
  subnet_ids                   = module.network.private_subnet_ids
  endpoint_public_access       = var.eks_endpoint_public_access
  endpoint_public_access_cidrs = var.eks_endpoint_public_access_cidrs
  cluster_log_retention_days   = var.log_retention_days

  node_instance_types = var.node_instance_types
  node_capacity_type  = var.node_capacity_type
  node_min_size       = var.node_min_size
  node_max_size       = var.node_max_size
  node_desired_size   = var.node_desired_size

  # CI deploys the chart into the services' namespace and nowhere else.
  access_entries = var.github_repository == null ? {} : {
    github-actions = {
      principal_arn = module.iam.github_actions_role_arn
      policy_name   = "AmazonEKSAdminPolicy"
      namespaces    = [var.namespace]
    }
  }

  tags = local.tags
}

module "queue" {
  source = "../queue"

  name                            = "${var.name}-emails"
  visibility_timeout_seconds      = var.queue_visibility_timeout_seconds
  consumer_max_processing_seconds = var.consumer_max_processing_seconds
  max_receive_count               = var.queue_max_receive_count

  tags = local.tags
}

module "bucket" {
  source = "../bucket"

  name = local.bucket_name
  # Both layouts' prefixes: objects written before a switch of STORAGE_LAYOUT age out too.
  lifecycle_prefixes = [var.bucket_key_prefix, var.batch_key_prefix]
  expiration_days    = var.email_expiration_days
  force_destroy      = var.force_destroy

  tags = local.tags
}

module "secret" {
  source = "../secret"

  name         = local.token_parameter
  kms_alias    = "${var.name}-api-token"
  clients_path = local.clients_path
  clients      = var.clients

  tags = local.tags
}

module "ecr" {
  source = "../ecr"

  repository_names = values(local.ecr_repositories)
  force_delete     = var.force_destroy

  tags = local.tags
}

module "catalog" {
  # The query layer of the batched layout (Glue table with partition projection, Athena workgroup).
  source = "../catalog"
  count  = var.storage_layout == "batched" ? 1 : 0

  name             = var.name
  bucket_name      = module.bucket.bucket_id
  batch_key_prefix = var.batch_key_prefix
  kms_key_arn      = module.bucket.kms_key_arn
  force_destroy    = var.force_destroy

  tags = local.tags
}

module "iam" {
  source = "../iam"

  name              = var.name
  oidc_provider_arn = module.eks.oidc_provider_arn
  oidc_issuer       = module.eks.oidc_issuer

  namespace                = var.namespace
  api_service_account      = var.api_service_account
  consumer_service_account = var.consumer_service_account
  operator_service_account = var.operator_service_account
  operator_principal_arns  = var.operator_principal_arns

  queue_arn                  = module.queue.queue_arn
  dlq_arn                    = module.queue.dlq_arn
  bucket_arn                 = module.bucket.bucket_arn
  bucket_key_prefix          = var.bucket_key_prefix
  batch_key_prefix           = var.batch_key_prefix
  bucket_kms_key_arn         = module.bucket.kms_key_arn
  token_parameter_arn        = module.secret.parameter_arn
  client_parameters_path_arn = module.secret.clients_path_arn
  token_kms_key_arn          = module.secret.kms_key_arn

  github_repository        = var.github_repository
  github_environments      = var.github_environments
  github_branches          = var.github_branches
  github_oidc_provider_arn = var.github_oidc_provider_arn
  ecr_repository_arns      = values(module.ecr.repository_arns)
  eks_cluster_arn          = module.eks.cluster_arn

  tags = local.tags
}

module "ingress" {
  source = "../ingress"

  name                    = var.name
  vpc_id                  = module.network.vpc_id
  subnet_ids              = module.network.public_subnet_ids
  ingress_cidr_blocks     = var.ingress_cidr_blocks
  certificate_arn         = var.certificate_arn
  node_security_group_id  = module.eks.cluster_security_group_id
  autoscaling_group_names = { default = module.eks.node_autoscaling_group_name }
  node_port               = var.api_node_port
  health_check_path       = "/healthz"
  deletion_protection     = var.deletion_protection
  access_logs_bucket      = var.alb_access_logs_bucket
  web_acl_arn             = var.web_acl_arn

  tags = local.tags
}

################################################################################
# Values for the Helm chart (terraform output -raw helm_values > values-<env>.generated.yaml)
################################################################################

locals {
  region = data.aws_region.current.id

  # ECR URLs are <registry>/<repository>; the chart takes the two parts apart (image.registry and
  # <component>.image.repository) and gives both services one tag (image.tag, set by the deploy).
  ecr_registry = split("/", module.ecr.repository_urls[local.ecr_repositories.api])[0]

  # The redrive tool's service account (helm/email-ingest: redrive.*), trusted by the operator role.
  redrive_enabled         = var.operator_service_account != null
  redrive_service_account = var.operator_service_account == null ? "" : var.operator_service_account
  redrive_role_arn        = module.iam.operator_role_arn == null ? "" : module.iam.operator_role_arn

  # Keys and shapes are those of helm/email-ingest/values.schema.json (tests/terraform/test_helm_values.py
  # validates this object against it and renders the chart with it). The namespace is not a value: the chart
  # uses the release's (helm --namespace), which must equal var.namespace for the IRSA trust policies.
  helm_values = {
    image = {
      registry = local.ecr_registry
    }
    aws = {
      region             = local.region
      sqsQueueUrl        = module.queue.queue_url
      sqsDlqUrl          = module.queue.dlq_url
      s3Bucket           = module.bucket.bucket_id
      tokenParameterName = module.secret.parameter_name
      tokenParameterPath = local.clients_path
    }
    api = {
      image = {
        repository = local.ecr_repositories.api
      }
      config = {
        tokenRotationGraceSeconds = var.token_rotation_grace_seconds
      }
      serviceAccount = {
        create  = true
        name    = var.api_service_account
        roleArn = module.iam.api_role_arn
      }
      # The load balancer of modules/ingress targets this port on every node.
      service = {
        type     = "NodePort"
        nodePort = var.api_node_port
      }
    }
    consumer = {
      image = {
        repository = local.ecr_repositories.consumer
      }
      config = {
        s3KeyPrefix    = var.bucket_key_prefix
        storageLayout  = var.storage_layout
        batchKeyPrefix = var.batch_key_prefix
        # null: the consumer's default (the chart then sets no variable)
        batchMaxBytes     = var.batch_limits.max_bytes
        batchMaxEmails    = var.batch_limits.max_emails
        batchMaxSeconds   = var.batch_limits.max_seconds
        batchMaxHeldBytes = var.batch_limits.max_held_bytes
      }
      serviceAccount = {
        create  = true
        name    = var.consumer_service_account
        roleArn = module.iam.consumer_role_arn
      }
    }
    tracing = {
      enabled      = var.tracing_endpoint != ""
      endpoint     = var.tracing_endpoint
      protocol     = var.tracing_protocol
      sampler      = var.tracing_sampler
      samplerRatio = var.tracing_sampler_ratio
    }
    redrive = {
      enabled = local.redrive_enabled
      serviceAccount = {
        name    = local.redrive_service_account
        roleArn = local.redrive_role_arn
      }
    }
  }
}
