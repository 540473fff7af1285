variable "region" {
  description = "Region of the state bucket."
  type        = string
  default     = "eu-west-1"
}

variable "allowed_account_ids" {
  description = "AWS account IDs this root may run against."
  type        = list(string)
}

variable "bucket_name" {
  description = "Name of the state bucket; null derives \"email-ingest-tfstate-<account id>\"."
  type        = string
  default     = null
}

variable "noncurrent_version_expiration_days" {
  description = "Days an overwritten state version is kept (how far back a state can be restored)."
  type        = number
  default     = 90
}
