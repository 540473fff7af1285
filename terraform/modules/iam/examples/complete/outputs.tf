output "api_role_arn" {
  description = "IRSA role of the API."
  value       = module.iam.api_role_arn
}

output "consumer_role_arn" {
  description = "IRSA role of the consumer."
  value       = module.iam.consumer_role_arn
}

output "operator_role_arn" {
  description = "Role of the DLQ redrive tool."
  value       = module.iam.operator_role_arn
}

output "github_actions_role_arn" {
  description = "Role of GitHub Actions."
  value       = module.iam.github_actions_role_arn
}
