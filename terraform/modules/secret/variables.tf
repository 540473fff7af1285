variable "name" {
  description = "Name of the SSM parameter holding the API token (TOKEN_PARAMETER_NAME), e.g. /email-ingest/prod/api-token."
  type        = string

  validation {
    condition     = startswith(var.name, "/")
    error_message = "name must be a hierarchical parameter name starting with \"/\"."
  }
}

variable "description" {
  description = "Description of the parameter."
  type        = string
  default     = "API token of email-ingest. Rotate with the procedure in terraform/README.md; never through Terraform."
}

variable "kms_alias" {
  description = "Alias of the customer-managed KMS key, without the \"alias/\" prefix."
  type        = string
}

variable "kms_deletion_window_in_days" {
  description = "Waiting period before the KMS key is deleted."
  type        = number
  default     = 30
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
