output "region" {
  description = "AWS region (AWS_REGION)."
  value       = local.region
}

output "cluster_name" {
  description = "EKS cluster (aws eks update-kubeconfig --name ...)."
  value       = module.eks.cluster_name
}

output "cluster_endpoint" {
  description = "Endpoint of the Kubernetes API."
  value       = module.eks.cluster_endpoint
}

output "namespace" {
  description = "Kubernetes namespace of the services."
  value       = var.namespace
}

output "queue_url" {
  description = "Main queue (SQS_QUEUE_URL)."
  value       = module.queue.queue_url
}

output "dlq_url" {
  description = "Dead-letter queue (SQS_DLQ_URL)."
  value       = module.queue.dlq_url
}

output "bucket_name" {
  description = "Email bucket (S3_BUCKET)."
  value       = module.bucket.bucket_id
}

output "bucket_key_prefix" {
  description = "Key prefix of the stored emails (S3_KEY_PREFIX)."
  value       = var.bucket_key_prefix
}

output "athena_workgroup_name" {
  description = "Athena workgroup over the batched emails (null in the per-email layout)."
  value       = one(module.catalog[*].workgroup_name)
}

output "glue_database_name" {
  description = "Glue database of the batched emails table (null in the per-email layout)."
  value       = one(module.catalog[*].database_name)
}

output "client_parameters_path" {
  description = "SSM path of the API clients' parameters (TOKEN_PARAMETER_PATH)."
  value       = local.clients_path
}

output "token_parameter_name" {
  description = "SSM parameter of the API token (TOKEN_PARAMETER_NAME)."
  value       = module.secret.parameter_name
}

output "token_kms_key_alias" {
  description = "KMS alias to pass to aws ssm put-parameter --key-id when rotating the token."
  value       = module.secret.kms_alias_name
}

output "api_role_arn" {
  description = "IRSA role of the API service account."
  value       = module.iam.api_role_arn
}

output "consumer_role_arn" {
  description = "IRSA role of the consumer service account."
  value       = module.iam.consumer_role_arn
}

output "operator_role_arn" {
  description = "Role of the DLQ redrive tool."
  value       = module.iam.operator_role_arn
}

output "github_actions_role_arn" {
  description = "Role for aws-actions/configure-aws-credentials in the deploy workflow."
  value       = module.iam.github_actions_role_arn
}

output "ecr_repository_urls" {
  description = "ECR repositories by name."
  value       = module.ecr.repository_urls
}

output "load_balancer_dns_name" {
  description = "DNS name of the API's load balancer (target of the API's DNS alias record)."
  value       = module.ingress.dns_name
}

output "load_balancer_zone_id" {
  description = "Hosted zone of the load balancer (for a Route 53 alias)."
  value       = module.ingress.zone_id
}

output "helm_values" {
  description = "A values file for the Helm chart, generated from this environment: terraform output -raw helm_values > values-ENV.generated.yaml"
  value       = yamlencode(local.helm_values)
}
