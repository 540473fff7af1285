variable "name" {
  description = "Name of the main queue; the dead-letter queue is named \"<name>-dlq\"."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,76}$", var.name))
    error_message = "name must be 1-76 characters of letters, digits, hyphens and underscores (room for the -dlq suffix)."
  }
}

variable "visibility_timeout_seconds" {
  description = "Visibility timeout of the main queue. The consumer reads it at start-up (VISIBILITY_TIMEOUT_SECONDS=0) and extends it by heartbeat."
  type        = number
  default     = 120

  validation {
    condition     = var.visibility_timeout_seconds >= 0 && var.visibility_timeout_seconds <= 43200
    error_message = "visibility_timeout_seconds must be between 0 and 43200 (12 hours)."
  }
}

variable "consumer_max_processing_seconds" {
  description = "Longest time the consumer may spend on one message (all S3 put attempts with their backoff)."
  type        = number
  default     = 60
}

variable "heartbeat_margin_seconds" {
  description = "Slack on top of consumer_max_processing_seconds for a late heartbeat (ChangeMessageVisibility) or a slow delete."
  type        = number
  default     = 30
}

variable "message_retention_seconds" {
  description = "How long the main queue keeps a message (default 4 days)."
  type        = number
  default     = 345600

  validation {
    condition     = var.message_retention_seconds >= 60 && var.message_retention_seconds <= 1209600
    error_message = "message_retention_seconds must be between 60 and 1209600 (14 days)."
  }
}

variable "dlq_message_retention_seconds" {
  description = "How long the dead-letter queue keeps a message (default and maximum 14 days)."
  type        = number
  default     = 1209600

  validation {
    condition     = var.dlq_message_retention_seconds >= 60 && var.dlq_message_retention_seconds <= 1209600
    error_message = "dlq_message_retention_seconds must be between 60 and 1209600 (14 days)."
  }
}

variable "receive_wait_time_seconds" {
  description = "Long-poll wait set on the queues, so that a receive without WaitTimeSeconds also long-polls."
  type        = number
  default     = 20

  validation {
    condition     = var.receive_wait_time_seconds >= 1 && var.receive_wait_time_seconds <= 20
    error_message = "receive_wait_time_seconds must be between 1 and 20 (long polling on)."
  }
}

variable "max_message_size" {
  description = "Largest message in bytes. A valid email's envelope can take 533359 bytes (over the old 256 KiB limit), so at least that; SQS allows 1 MiB."
  type        = number
  default     = 1048576

  validation {
    # 533359: ingest_common.envelope.largest_message_bytes(), the largest envelope a valid email makes.
    condition     = var.max_message_size >= 533359 && var.max_message_size <= 1048576
    error_message = "max_message_size must be between 533359 (the largest envelope of a valid email) and 1048576 bytes."
  }
}

variable "max_receive_count" {
  description = "Receives after which a message moves to the dead-letter queue (maxReceiveCount)."
  type        = number
  default     = 5

  validation {
    condition     = var.max_receive_count >= 1 && var.max_receive_count <= 1000
    error_message = "max_receive_count must be between 1 and 1000."
  }
}

variable "kms_master_key_id" {
  description = "KMS key (ID, ARN or alias) for SSE-KMS; null uses SQS-managed SSE (SSE-SQS)."
  type        = string
  default     = null
}

variable "kms_data_key_reuse_period_seconds" {
  description = "How long SQS reuses a data key before calling KMS again (SSE-KMS only)."
  type        = number
  default     = 300
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
