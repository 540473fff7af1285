variable "name" {
  description = "Prefix of the Glue database, the Athena workgroup and the named query (letters, digits, hyphens, underscores)."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9_-]{0,40}$", var.name))
    error_message = "name must start with a lowercase letter and hold at most 41 lowercase letters, digits, '_' and '-'."
  }
}

variable "bucket_name" {
  description = "The bucket the consumer writes batches to (STORAGE_LAYOUT=batched); Athena's results go to the same bucket."
  type        = string
}

variable "batch_key_prefix" {
  description = "Key prefix of the batch objects (the consumer's S3_KEY_PREFIX in the batched layout), ending in '/'."
  type        = string
  default     = "batches/"

  validation {
    condition     = can(regex("^[A-Za-z0-9!_.*'()-]+(/[A-Za-z0-9!_.*'()-]+)*/$", var.batch_key_prefix))
    error_message = "batch_key_prefix must be a relative key prefix ending in '/'."
  }
}

variable "results_key_prefix" {
  description = "Key prefix of Athena's query results in the bucket, ending in '/' (kept apart from the emails)."
  type        = string
  default     = "athena-results/"

  validation {
    condition     = can(regex("^[A-Za-z0-9!_.*'()-]+(/[A-Za-z0-9!_.*'()-]+)*/$", var.results_key_prefix))
    error_message = "results_key_prefix must be a relative key prefix ending in '/'."
  }
}

variable "kms_key_arn" {
  description = "KMS key that encrypts Athena's query results (the bucket's key); null uses SSE-S3."
  type        = string
  default     = null
}

variable "projection_start_date" {
  description = "First day (YYYY-MM-DD) the partition projection covers; queries never scan days before it."
  type        = string
  default     = "2026-01-01"

  validation {
    condition     = can(regex("^\\d{4}-\\d{2}-\\d{2}$", var.projection_start_date))
    error_message = "projection_start_date must be a date written YYYY-MM-DD."
  }
}

variable "bytes_scanned_cutoff_per_query" {
  description = "Athena cancels a query of this workgroup past this many bytes scanned (at least 10 MB)."
  type        = number
  default     = 10737418240

  validation {
    condition     = var.bytes_scanned_cutoff_per_query >= 10485760
    error_message = "bytes_scanned_cutoff_per_query must be at least 10485760 (Athena's minimum)."
  }
}

variable "force_destroy" {
  description = "Let terraform destroy delete the workgroup with its saved queries and history."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags for every resource that takes them."
  type        = map(string)
  default     = {}
}
