output "api_role_arn" {
  description = "IRSA role of the API service account."
  value       = aws_iam_role.api.arn
}

output "consumer_role_arn" {
  description = "IRSA role of the consumer service account."
  value       = aws_iam_role.consumer.arn
}

output "operator_role_arn" {
  description = "Role of the DLQ redrive tool; null when no operator role was asked for."
  value       = one(aws_iam_role.operator[*].arn)
}

output "github_actions_role_arn" {
  description = "Role GitHub Actions assumes (aws-actions/configure-aws-credentials role-to-assume); null without github_repository."
  value       = one(aws_iam_role.github[*].arn)
}

output "github_oidc_provider_arn" {
  description = "ARN of the GitHub Actions OIDC provider used by the CI role."
  value       = local.github_oidc_provider_arn
}
