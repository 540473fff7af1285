variable "region" {
  description = "AWS region to create the example in."
  type        = string
  default     = "eu-west-1"
}

variable "oidc_provider_arn" {
  description = "IRSA OIDC provider of an existing EKS cluster (output oidc_provider_arn of module eks)."
  type        = string
}

variable "oidc_issuer" {
  description = "OIDC issuer of that cluster without https:// (output oidc_issuer of module eks)."
  type        = string
}

variable "eks_cluster_arn" {
  description = "ARN of that cluster."
  type        = string
}

variable "github_repository" {
  description = "GitHub repository (\"owner/name\") allowed to assume the CI role."
  type        = string
  default     = "example-org/email-ingest"
}
