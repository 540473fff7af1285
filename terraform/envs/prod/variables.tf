variable "region" {
  description = "AWS region of the environment."
  type        = string
  default     = "eu-west-1"
}

variable "allowed_account_ids" {
  description = "AWS account IDs this root may run against (guards against a wrong profile)."
  type        = list(string)
}

variable "azs" {
  description = "Availability zones of the environment (in var.region)."
  type        = list(string)
}

variable "vpc_cidr" {
  description = "CIDR block of the VPC."
  type        = string
}

variable "kubernetes_version" {
  description = "Kubernetes minor version of the cluster."
  type        = string
  default     = "1.34"
}

variable "eks_endpoint_public_access_cidrs" {
  description = "CIDR blocks that may reach the Kubernetes API (CI runners, VPN)."
  type        = list(string)
}

variable "certificate_arn" {
  description = "ACM certificate of the API hostname."
  type        = string
}

variable "ingress_cidr_blocks" {
  description = "CIDR blocks allowed to reach the API load balancer."
  type        = list(string)
  default     = ["0.0.0.0/0"]
}

variable "operator_principal_arns" {
  description = "IAM principals (on-call SSO roles) that may assume the DLQ operator role."
  type        = list(string)
  default     = []
}

variable "github_repository" {
  description = "GitHub repository (\"owner/name\") whose Actions deploy this environment."
  type        = string
}

variable "github_oidc_provider_arn" {
  description = "Existing GitHub Actions OIDC provider of the account; null creates it."
  type        = string
  default     = null
}

variable "tags" {
  description = "Extra tags for every resource (cost centre, owner)."
  type        = map(string)
  default     = {}
}

variable "email_expiration_days" {
  description = "Days after which stored emails expire; null keeps them (set it from your retention policy)."
  type        = number
  default     = null
}

variable "alb_access_logs_bucket" {
  description = "Bucket for load balancer access logs; null disables them."
  type        = string
  default     = null
}

variable "web_acl_arn" {
  description = "WAFv2 web ACL for the load balancer; null for none."
  type        = string
  default     = null
}
