variable "name" {
  description = "Name of the VPC, used as a prefix for every resource of this module."
  type        = string
}

variable "cidr" {
  description = "IPv4 CIDR block of the VPC."
  type        = string
  default     = "10.0.0.0/16"

  validation {
    condition     = can(cidrhost(var.cidr, 0))
    error_message = "cidr must be a valid IPv4 CIDR block."
  }
}

variable "azs" {
  description = "Availability zones to spread the subnets over (at least two)."
  type        = list(string)

  validation {
    condition     = length(var.azs) >= 2
    error_message = "Give at least two availability zones: EKS needs subnets in two AZs."
  }
}

variable "public_subnets" {
  description = "CIDR blocks of the public subnets, one per AZ; empty derives /24 blocks from cidr."
  type        = list(string)
  default     = []
}

variable "private_subnets" {
  description = "CIDR blocks of the private subnets, one per AZ; empty derives /20 blocks from cidr."
  type        = list(string)
  default     = []
}

variable "enable_nat_gateway" {
  description = "Whether the private subnets reach the internet through NAT gateways (nodes pull images and call AWS APIs)."
  type        = bool
  default     = true
}

variable "single_nat_gateway" {
  description = "Use one NAT gateway for all AZs (cheaper; egress fails with that AZ). false puts one in each AZ."
  type        = bool
  default     = false
}

variable "enable_s3_gateway_endpoint" {
  description = "Create an S3 gateway endpoint for the private route tables (free; keeps S3 traffic off the NAT gateways)."
  type        = bool
  default     = true
}

variable "cluster_name" {
  description = "Name of the EKS cluster that uses these subnets (adds the kubernetes.io/cluster tag); null for none."
  type        = string
  default     = null
}

variable "enable_flow_logs" {
  description = "Send VPC flow logs to CloudWatch Logs."
  type        = bool
  default     = true
}

variable "flow_logs_retention_days" {
  description = "Retention of the flow logs in days."
  type        = number
  default     = 365
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
