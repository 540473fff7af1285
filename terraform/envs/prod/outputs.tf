output "region" {
  description = "AWS region (AWS_REGION)."
  value       = module.email_ingest.region
}

output "cluster_name" {
  description = "EKS cluster: aws eks update-kubeconfig --name <this>."
  value       = module.email_ingest.cluster_name
}

output "namespace" {
  description = "Kubernetes namespace of the services."
  value       = module.email_ingest.namespace
}

output "queue_url" {
  description = "Main queue (SQS_QUEUE_URL)."
  value       = module.email_ingest.queue_url
}

output "dlq_url" {
  description = "Dead-letter queue (SQS_DLQ_URL)."
  value       = module.email_ingest.dlq_url
}

output "bucket_name" {
  description = "Email bucket (S3_BUCKET)."
  value       = module.email_ingest.bucket_name
}

output "token_parameter_name" {
  description = "SSM parameter of the API token (TOKEN_PARAMETER_NAME)."
  value       = module.email_ingest.token_parameter_name
}

output "token_kms_key_alias" {
  description = "KMS alias for aws ssm put-parameter --key-id when rotating the token."
  value       = module.email_ingest.token_kms_key_alias
}

output "api_role_arn" {
  description = "IRSA role of the API."
  value       = module.email_ingest.api_role_arn
}

output "consumer_role_arn" {
  description = "IRSA role of the consumer."
  value       = module.email_ingest.consumer_role_arn
}

output "operator_role_arn" {
  description = "Role of the DLQ redrive tool."
  value       = module.email_ingest.operator_role_arn
}

output "github_actions_role_arn" {
  description = "Role for the deploy workflow (repository variable AWS_ROLE_ARN)."
  value       = module.email_ingest.github_actions_role_arn
}

output "ecr_repository_urls" {
  description = "ECR repositories by name."
  value       = module.email_ingest.ecr_repository_urls
}

output "load_balancer_dns_name" {
  description = "DNS name of the API's load balancer."
  value       = module.email_ingest.load_balancer_dns_name
}

output "helm_values" {
  description = "Helm values generated from this environment: terraform output -raw helm_values > values-ENV.generated.yaml"
  value       = module.email_ingest.helm_values
}
