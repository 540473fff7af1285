variable "name" {
  description = "Name of the SSM parameter holding the API token (TOKEN_PARAMETER_NAME), e.g. /email-ingest/prod/api-token."
  type        = string

  validation {
    condition     = startswith(var.name, "/")
    error_message = "name must be a hierarchical parameter name starting with \"/\"."
  }
}

variable "clients_path" {
  description = "SSM path of the clients' parameters (TOKEN_PARAMETER_PATH), e.g. /email-ingest/prod/clients: one SecureString per client right under it."
  type        = string
  default     = null

  validation {
    condition     = var.clients_path == null || can(regex("^(/[A-Za-z0-9_.-]+)+$", var.clients_path))
    error_message = "clients_path must be an SSM path such as /email-ingest/prod/clients (starting with \"/\", no trailing \"/\")."
  }
}

variable "clients" {
  description = "API clients by name, one SecureString each at <clients_path>/<name>, encrypted with this module's key. As for the single token, the values never pass through Terraform: each parameter is created with a random value nobody knows, and its real token (or JSON with a rate limit) is written out of band (docs/runbook.md, \"Clients\"). Removing a client deletes its parameter: that revokes it."
  type = map(object({
    description = optional(string)
  }))
  default = {}

  validation {
    condition     = alltrue([for name in keys(var.clients) : can(regex("^[A-Za-z0-9_.-]{1,64}$", name)) && name != "unauthenticated"])
    error_message = "Client names must be 1 to 64 letters, digits, \"_\", \".\" or \"-\" (the API refuses others), and not \"unauthenticated\" (reserved)."
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
