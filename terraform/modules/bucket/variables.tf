variable "name" {
  description = "Name of the bucket (globally unique)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.name))
    error_message = "name must be a valid S3 bucket name: 3-63 lowercase letters, digits, dots and hyphens."
  }
}

variable "force_destroy" {
  description = "Allow terraform destroy to delete a bucket that still holds objects. Keep false outside throw-away environments."
  type        = bool
  default     = false
}

variable "sse_algorithm" {
  description = "Default encryption: \"aws:kms\" (SSE-KMS with a customer-managed key, the default) or \"AES256\" (SSE-S3)."
  type        = string
  default     = "aws:kms"

  validation {
    condition     = contains(["aws:kms", "AES256"], var.sse_algorithm)
    error_message = "sse_algorithm must be \"aws:kms\" or \"AES256\"."
  }
}

variable "kms_key_arn" {
  description = "ARN of an existing KMS key for SSE-KMS; null creates one in this module."
  type        = string
  default     = null
}

variable "kms_deletion_window_in_days" {
  description = "Waiting period before the created KMS key is deleted."
  type        = number
  default     = 30
}

variable "lifecycle_prefixes" {
  description = "Key prefixes the transition and expiration rules apply to, one rule each ([\"\"] for the whole bucket)."
  type        = list(string)
  default     = [""]

  validation {
    condition     = length(var.lifecycle_prefixes) > 0 && length(distinct(var.lifecycle_prefixes)) == length(var.lifecycle_prefixes)
    error_message = "lifecycle_prefixes must name at least one prefix, each once."
  }
}

variable "transition_to_ia_days" {
  description = "Days after creation to move objects (of 128 KiB and more) to STANDARD_IA; null disables."
  type        = number
  default     = 30
}

variable "transition_to_glacier_ir_days" {
  description = "Days after creation to move objects (of 128 KiB and more) to GLACIER_IR; null disables."
  type        = number
  default     = 90
}

variable "expiration_days" {
  description = "Days after creation to expire current objects; null keeps them forever."
  type        = number
  default     = null
}

variable "noncurrent_version_expiration_days" {
  description = "Days after which a noncurrent (overwritten or deleted) version is removed."
  type        = number
  default     = 30
}

variable "abort_incomplete_multipart_upload_days" {
  description = "Days after which an unfinished multipart upload is aborted."
  type        = number
  default     = 7
}

variable "access_log_bucket" {
  description = "Name of a bucket that receives server access logs; null disables access logging."
  type        = string
  default     = null
}

variable "policy_documents" {
  description = "Extra bucket policy documents (JSON) merged with the TLS-only statements."
  type        = list(string)
  default     = []
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
