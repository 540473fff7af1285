variable "name" {
  description = "Name of the environment's resources (cluster, VPC, roles), e.g. \"email-ingest-prod\"; at most 32 characters (load balancer name)."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}[a-z0-9]$", var.name))
    error_message = "name must be 3-32 lowercase letters, digits and hyphens, starting with a letter."
  }
}

variable "environment" {
  description = "Environment name (dev, prod): tags and the default token parameter path."
  type        = string
}

################################ network ################################

variable "vpc_cidr" {
  description = "CIDR block of the VPC."
  type        = string
  default     = "10.0.0.0/16"
}

variable "azs" {
  description = "Availability zones (at least two) of the subnets, nodes and load balancer; explicit so that a new AZ never reshuffles the subnets."
  type        = list(string)

  validation {
    condition     = length(var.azs) >= 2
    error_message = "Give at least two availability zones."
  }
}

variable "single_nat_gateway" {
  description = "One NAT gateway for all AZs (cost option for dev) instead of one per AZ."
  type        = bool
  default     = false
}

variable "log_retention_days" {
  description = "Retention of the VPC flow logs and EKS control plane logs in days."
  type        = number
  default     = 365
}

################################ eks ################################

variable "kubernetes_version" {
  description = "Kubernetes minor version of the cluster."
  type        = string
  default     = "1.34"
}

variable "eks_endpoint_public_access" {
  description = "Expose the Kubernetes API endpoint publicly (limited to eks_endpoint_public_access_cidrs)."
  type        = bool
  default     = true
}

variable "eks_endpoint_public_access_cidrs" {
  description = "CIDR blocks that may reach the public Kubernetes API endpoint (CI runners, office, VPN)."
  type        = list(string)
}

variable "node_instance_types" {
  description = "Instance types of the node group."
  type        = list(string)
  default     = ["m7i.large"]
}

variable "node_capacity_type" {
  description = "ON_DEMAND or SPOT."
  type        = string
  default     = "ON_DEMAND"
}

variable "node_min_size" {
  description = "Minimum number of nodes."
  type        = number
  default     = 3
}

variable "node_max_size" {
  description = "Maximum number of nodes."
  type        = number
  default     = 9
}

variable "node_desired_size" {
  description = "Initial number of nodes."
  type        = number
  default     = 3
}

################################ queue, bucket, secret ################################

variable "queue_visibility_timeout_seconds" {
  description = "Visibility timeout of the queue (the consumer reads it at start-up and heartbeats)."
  type        = number
  default     = 120
}

variable "consumer_max_processing_seconds" {
  description = "Longest time the consumer may spend on one message; the visibility timeout must exceed it plus the heartbeat margin."
  type        = number
  default     = 60
}

variable "queue_max_receive_count" {
  description = "Receives before a message moves to the DLQ."
  type        = number
  default     = 5
}

variable "bucket_name" {
  description = "Name of the email bucket; null derives \"<name>-emails-<account id>\"."
  type        = string
  default     = null
}

variable "bucket_key_prefix" {
  description = "Key prefix of the stored emails (S3_KEY_PREFIX)."
  type        = string
  default     = "emails/"
}

variable "storage_layout" {
  description = "How the consumer stores emails (STORAGE_LAYOUT): \"per-email\" (one object each, exactly once by key) or \"batched\" (gzip NDJSON batches per hour, at least once; creates the Glue table and the Athena workgroup)."
  type        = string
  default     = "per-email"

  validation {
    condition     = contains(["per-email", "batched"], var.storage_layout)
    error_message = "storage_layout must be \"per-email\" or \"batched\"."
  }
}

variable "batch_key_prefix" {
  description = "Key prefix of the batch objects (BATCH_KEY_PREFIX)."
  type        = string
  default     = "batches/"
}

variable "batch_limits" {
  description = "The batched layout's limits (BATCH_MAX_BYTES, BATCH_MAX_EMAILS, BATCH_MAX_SECONDS, BATCH_MAX_HELD_BYTES); null keeps the consumer's defaults."
  type = object({
    max_bytes      = optional(number)
    max_emails     = optional(number)
    max_seconds    = optional(number)
    max_held_bytes = optional(number)
  })
  default = {}
}

variable "email_expiration_days" {
  description = "Days after which stored emails expire; null keeps them."
  type        = number
  default     = null
}

variable "token_parameter_name" {
  description = "Name of the token parameter; null derives \"/email-ingest/<environment>/api-token\"."
  type        = string
  default     = null
}

variable "client_parameters_path" {
  description = "SSM path of the API clients' parameters (TOKEN_PARAMETER_PATH); null derives \"/email-ingest/<environment>/clients\"."
  type        = string
  default     = null
}

variable "clients" {
  description = "API clients by name: one SecureString each under client_parameters_path, its token written out of band (never through Terraform: docs/runbook.md, \"Clients\"). Removing one revokes it. The single token (token_parameter_name) stays, as the client \"default\"."
  type = map(object({
    description = optional(string)
  }))
  default = {}
}

variable "token_rotation_grace_seconds" {
  description = "TOKEN_ROTATION_GRACE_SECONDS given to the API (helm value api.config.tokenRotationGraceSeconds): the previous token stays valid this long after SSM recorded the new one, on every pod. Must cover the time clients need to switch, and exceed the token refresh period (300 s + 10% jitter) so that every pod has reloaded before the old token ends (a pod that never saw the new token could otherwise accept the old one until its next refresh)."
  type        = number
  default     = 900

  validation {
    condition     = var.token_rotation_grace_seconds > 330 && var.token_rotation_grace_seconds <= 604800 && floor(var.token_rotation_grace_seconds) == var.token_rotation_grace_seconds
    error_message = "token_rotation_grace_seconds must be a whole number of seconds above 330 (the API's refresh period of 300 s plus 10% jitter, so that every pod has reloaded before the old token ends) and at most 604800 (7 days, the API's limit)."
  }
}

variable "force_destroy" {
  description = "Let terraform destroy delete a non-empty bucket and ECR repositories (throw-away environments only)."
  type        = bool
  default     = false
}

################################ Kubernetes names ################################

variable "namespace" {
  description = "Kubernetes namespace of the services: the namespace the chart is installed in (helm --namespace)."
  type        = string
  default     = "email-ingest"

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", var.namespace))
    error_message = "namespace must be a DNS label (lowercase letters, digits and hyphens, at most 63 characters)."
  }
}

# The defaults are the names helm/email-ingest gives the service accounts for the release "email-ingest" (the
# release name of .github/workflows/cd.yml); helm_values passes them to the chart as well.
variable "api_service_account" {
  description = "Service account of the API (helm value api.serviceAccount.name)."
  type        = string
  default     = "email-ingest-api"

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", var.api_service_account))
    error_message = "api_service_account must be a DNS label (lowercase letters, digits and hyphens, at most 63 characters)."
  }
}

variable "consumer_service_account" {
  description = "Service account of the consumer (helm value consumer.serviceAccount.name)."
  type        = string
  default     = "email-ingest-consumer"

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", var.consumer_service_account))
    error_message = "consumer_service_account must be a DNS label (lowercase letters, digits and hyphens, at most 63 characters)."
  }
}

variable "operator_service_account" {
  description = "Service account of the DLQ redrive tool (helm values redrive.*); null for none."
  type        = string
  default     = "email-ingest-redrive"

  validation {
    condition     = var.operator_service_account == null || can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", var.operator_service_account))
    error_message = "operator_service_account must be null or a DNS label (lowercase letters, digits and hyphens, at most 63 characters)."
  }
}

variable "operator_principal_arns" {
  description = "IAM principals (on-call SSO roles) that may assume the operator role."
  type        = list(string)
  default     = []
}

variable "api_node_port" {
  description = "NodePort of the API Service that the load balancer targets (helm value api.service.nodePort)."
  type        = number
  default     = 30080

  validation {
    condition     = var.api_node_port >= 30000 && var.api_node_port <= 32767 && floor(var.api_node_port) == var.api_node_port
    error_message = "api_node_port must be an integer in Kubernetes' NodePort range 30000-32767."
  }
}

################################ ingress ################################

variable "certificate_arn" {
  description = "ACM certificate of the API's HTTPS listener."
  type        = string
}

variable "ingress_cidr_blocks" {
  description = "CIDR blocks allowed to reach the load balancer."
  type        = list(string)
  default     = ["0.0.0.0/0"]
}

variable "deletion_protection" {
  description = "Protect the load balancer from deletion."
  type        = bool
  default     = true
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

################################ CI ################################

variable "github_repository" {
  description = "GitHub repository (\"owner/name\") whose Actions push images and deploy; null creates no CI role."
  type        = string
  default     = null
}

variable "github_environments" {
  description = "GitHub environments allowed to assume the CI role."
  type        = list(string)
  default     = []
}

variable "github_branches" {
  description = "Branches allowed to assume the CI role (jobs without an environment)."
  type        = list(string)
  default     = []
}

variable "github_oidc_provider_arn" {
  description = "Existing GitHub Actions OIDC provider of the account; null creates it (once per account)."
  type        = string
  default     = null
}

variable "ecr_repository_prefix" {
  description = "Prefix of the ECR repository names (e.g. \"dev/\" when two environments share an account)."
  type        = string
  default     = ""
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}

################################################################################
# Tracing (helm values tracing.*; docs/tracing.md)
################################################################################

variable "tracing_endpoint" {
  description = "OTLP endpoint of the trace collector the services send to (helm value tracing.endpoint), e.g. an ADOT collector exporting to AWS X-Ray: http://adot-collector.observability:4318. Empty: tracing off."
  type        = string
  default     = ""

  validation {
    condition     = var.tracing_endpoint == "" || can(regex("^https?://[^\\s]+$", var.tracing_endpoint))
    error_message = "tracing_endpoint must be empty (tracing off) or an http(s) URL."
  }
}

variable "tracing_protocol" {
  description = "OTLP protocol to the collector (helm value tracing.protocol): http/protobuf (port 4318) or grpc (4317)."
  type        = string
  default     = "http/protobuf"

  validation {
    condition     = contains(["http/protobuf", "grpc"], var.tracing_protocol)
    error_message = "tracing_protocol must be http/protobuf or grpc."
  }
}

variable "tracing_sampler" {
  description = "OTEL_TRACES_SAMPLER of both services (helm value tracing.sampler)."
  type        = string
  default     = "parentbased_traceidratio"

  validation {
    condition     = contains(["always_on", "always_off", "traceidratio", "parentbased_always_on", "parentbased_always_off", "parentbased_traceidratio"], var.tracing_sampler)
    error_message = "tracing_sampler must be one of the OpenTelemetry SDK's samplers (always_on, always_off, traceidratio, parentbased_*)."
  }
}

variable "tracing_sampler_ratio" {
  description = "Share of new traces the ratio samplers keep (helm value tracing.samplerRatio), 0 to 1."
  type        = number
  default     = 0.01

  validation {
    condition     = var.tracing_sampler_ratio >= 0 && var.tracing_sampler_ratio <= 1
    error_message = "tracing_sampler_ratio must be between 0 and 1."
  }
}
