output "cluster_name" {
  description = "Name of the cluster."
  value       = module.eks.cluster_name
}

output "oidc_provider_arn" {
  description = "ARN of the IRSA OIDC provider."
  value       = module.eks.oidc_provider_arn
}
