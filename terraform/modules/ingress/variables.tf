variable "name" {
  description = "Name of the load balancer (at most 32 characters)."
  type        = string

  validation {
    condition     = length(var.name) <= 32
    error_message = "A load balancer name has at most 32 characters."
  }
}

variable "vpc_id" {
  description = "VPC of the load balancer and the nodes."
  type        = string
}

variable "subnet_ids" {
  description = "Subnets of the load balancer (public ones for an internet-facing load balancer), in at least two AZs."
  type        = list(string)

  validation {
    condition     = length(var.subnet_ids) >= 2
    error_message = "An Application Load Balancer needs subnets in at least two availability zones."
  }
}

variable "internal" {
  description = "Make the load balancer internal (reachable from the VPC and peered networks only)."
  type        = bool
  default     = false
}

variable "ingress_cidr_blocks" {
  description = "IPv4 CIDR blocks allowed to reach the load balancer."
  type        = list(string)
  default     = ["0.0.0.0/0"]
}

variable "certificate_arn" {
  description = "ACM certificate of the HTTPS listener."
  type        = string
}

variable "ssl_policy" {
  description = "TLS policy of the HTTPS listener (TLS 1.2 and 1.3 only by default)."
  type        = string
  default     = "ELBSecurityPolicy-TLS13-1-2-2021-06"
}

variable "node_security_group_id" {
  description = "Security group of the nodes (the EKS cluster security group); gets an ingress rule for the NodePort from the load balancer."
  type        = string
}

variable "autoscaling_group_names" {
  description = "Auto Scaling groups of the nodes, by a static key (e.g. { default = module.eks.node_autoscaling_group_name })."
  type        = map(string)
}

variable "node_port" {
  description = "NodePort of the API Service (the Helm chart's service.nodePort)."
  type        = number
  default     = 30080

  validation {
    condition     = var.node_port >= 30000 && var.node_port <= 32767
    error_message = "node_port must be in the Kubernetes NodePort range 30000-32767."
  }
}

variable "public_paths" {
  description = "Path patterns the HTTPS listener forwards to the API (the chart's api.ingress.paths); everything else gets 404."
  type        = list(string)
  default     = ["/api/*"]

  validation {
    condition     = length(var.public_paths) >= 1 && length(var.public_paths) <= 5 && alltrue([for path in var.public_paths : startswith(path, "/")])
    error_message = "Give 1-5 path patterns, each starting with \"/\"."
  }
}

variable "health_check_path" {
  description = "Health check path of the API. /healthz, not /readyz: with externalTrafficPolicy Cluster kube-proxy sends the check to any ready API pod, so it tests the node's path; pod readiness is Kubernetes' job."
  type        = string
  default     = "/healthz"
}

variable "deregistration_delay" {
  description = "Seconds a deregistering target keeps its in-flight requests."
  type        = number
  default     = 30
}

variable "idle_timeout" {
  description = "Idle timeout of client connections in seconds."
  type        = number
  default     = 60
}

variable "deletion_protection" {
  description = "Protect the load balancer from deletion."
  type        = bool
  default     = true
}

variable "access_logs_bucket" {
  description = "Bucket for access logs (its policy must allow ELB log delivery); null disables access logs."
  type        = string
  default     = null
}

variable "web_acl_arn" {
  description = "WAFv2 web ACL to associate with the load balancer; null for none."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
