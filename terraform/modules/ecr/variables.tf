variable "repository_names" {
  description = "One repository per service image."
  type        = list(string)
  default     = ["email-ingest-api", "email-ingest-consumer"]
}

variable "kms_key_arn" {
  description = "KMS key for image encryption; null uses the AWS-managed ECR key."
  type        = string
  default     = null
}

variable "max_image_count" {
  description = "Images kept per repository; older ones expire."
  type        = number
  default     = 50

  validation {
    condition     = var.max_image_count >= 1
    error_message = "max_image_count must be at least 1."
  }
}

variable "untagged_image_expiry_days" {
  description = "Days after which an untagged image expires."
  type        = number
  default     = 7
}

variable "force_delete" {
  description = "Allow terraform destroy to delete repositories that still hold images."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
