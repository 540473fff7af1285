variable "name" {
  description = "Prefix of the role names, e.g. \"email-ingest-prod\"."
  type        = string
}

variable "oidc_provider_arn" {
  description = "ARN of the EKS cluster's IAM OIDC provider (IRSA)."
  type        = string
}

variable "oidc_issuer" {
  description = "OIDC issuer of the cluster without https:// (e.g. oidc.eks.eu-west-1.amazonaws.com/id/ABC)."
  type        = string
}

variable "namespace" {
  description = "Kubernetes namespace of the services."
  type        = string
  default     = "email-ingest"
}

variable "api_service_account" {
  description = "Kubernetes service account of the API pods."
  type        = string
  default     = "email-ingest-api"
}

variable "consumer_service_account" {
  description = "Kubernetes service account of the consumer pods."
  type        = string
  default     = "email-ingest-consumer"
}

variable "operator_service_account" {
  description = "Kubernetes service account that runs the DLQ redrive tool (a Job or a one-off pod); null for none."
  type        = string
  default     = "email-ingest-redrive"
}

variable "operator_principal_arns" {
  description = "IAM principals (e.g. SSO roles of the on-call engineers) that may assume the operator role."
  type        = list(string)
  default     = []
}

variable "queue_arn" {
  description = "ARN of the main queue."
  type        = string
}

variable "dlq_arn" {
  description = "ARN of the dead-letter queue."
  type        = string
}

variable "queue_kms_key_arn" {
  description = "KMS key of the queues when they use SSE-KMS; null with SSE-SQS."
  type        = string
  default     = null
}

variable "bucket_arn" {
  description = "ARN of the email bucket."
  type        = string
}

variable "bucket_key_prefix" {
  description = "Key prefix the consumer writes under (S3_KEY_PREFIX)."
  type        = string
  default     = "emails/"

  validation {
    condition     = endswith(var.bucket_key_prefix, "/") && !startswith(var.bucket_key_prefix, "/")
    error_message = "bucket_key_prefix must end with \"/\" and not start with one."
  }
}

variable "batch_key_prefix" {
  description = "Key prefix of the batch objects in the batched layout (BATCH_KEY_PREFIX): the consumer may put there too."
  type        = string
  default     = "batches/"

  validation {
    condition     = endswith(var.batch_key_prefix, "/") && !startswith(var.batch_key_prefix, "/")
    error_message = "batch_key_prefix must end with \"/\" and not start with one."
  }
}

variable "bucket_kms_key_arn" {
  description = "KMS key of the bucket when it uses SSE-KMS; null with SSE-S3."
  type        = string
  default     = null
}

variable "token_parameter_arn" {
  description = "ARN of the SSM parameter holding the API token."
  type        = string
}

variable "client_parameters_path_arn" {
  description = "ARN of the SSM path of the clients' parameters (TOKEN_PARAMETER_PATH; the secret module's clients_path_arn); null grants nothing under a path."
  type        = string
  default     = null
}

variable "token_kms_key_arn" {
  description = "ARN of the KMS key that encrypts the token parameter."
  type        = string
}

variable "github_repository" {
  description = "GitHub repository (\"owner/name\") whose Actions may push images and deploy; null creates no CI role."
  type        = string
  default     = null
}

variable "github_environments" {
  description = "GitHub environments whose jobs may assume the CI role (subject repo:OWNER/NAME:environment:ENV)."
  type        = list(string)
  default     = []
}

variable "github_branches" {
  description = "Branches whose jobs (without an environment) may assume the CI role (subject repo:OWNER/NAME:ref:refs/heads/BRANCH)."
  type        = list(string)
  default     = []
}

variable "github_oidc_provider_arn" {
  description = "ARN of an existing token.actions.githubusercontent.com provider (one per account); null creates it."
  type        = string
  default     = null
}

variable "ecr_repository_arns" {
  description = "ECR repositories the CI role may push to."
  type        = list(string)
  default     = []
}

variable "eks_cluster_arn" {
  description = "ARN of the EKS cluster the CI role deploys to."
  type        = string
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
