variable "name" {
  description = "Name of the EKS cluster."
  type        = string
}

variable "kubernetes_version" {
  description = "Kubernetes minor version of the control plane (e.g. \"1.34\"); upgrade one minor at a time."
  type        = string
  default     = "1.34"
}

variable "subnet_ids" {
  description = "Private subnets (in at least two AZs) for the control plane ENIs and the nodes."
  type        = list(string)

  validation {
    condition     = length(var.subnet_ids) >= 2
    error_message = "EKS needs subnets in at least two availability zones."
  }
}

variable "endpoint_public_access" {
  description = "Expose the Kubernetes API endpoint publicly (limited to endpoint_public_access_cidrs). false keeps it private to the VPC."
  type        = bool
  default     = true
}

variable "endpoint_public_access_cidrs" {
  description = "CIDR blocks that may reach the public Kubernetes API endpoint."
  type        = list(string)
  default     = ["0.0.0.0/0"]
}

variable "bootstrap_cluster_creator_admin_permissions" {
  description = "Give the identity that creates the cluster a cluster-admin access entry."
  type        = bool
  default     = true
}

variable "cluster_log_types" {
  description = "Control plane logs sent to CloudWatch Logs."
  type        = list(string)
  default     = ["api", "audit", "authenticator", "controllerManager", "scheduler"]
}

variable "cluster_log_retention_days" {
  description = "Retention of the control plane logs in days."
  type        = number
  default     = 365
}

variable "kms_deletion_window_in_days" {
  description = "Waiting period before the secrets-encryption KMS key is deleted."
  type        = number
  default     = 30
}

variable "node_instance_types" {
  description = "Instance types of the managed node group (several help Spot capacity)."
  type        = list(string)
  default     = ["m7i.large"]
}

variable "node_capacity_type" {
  description = "ON_DEMAND or SPOT."
  type        = string
  default     = "ON_DEMAND"

  validation {
    condition     = contains(["ON_DEMAND", "SPOT"], var.node_capacity_type)
    error_message = "node_capacity_type must be ON_DEMAND or SPOT."
  }
}

variable "node_ami_type" {
  description = "AMI type of the nodes."
  type        = string
  default     = "AL2023_x86_64_STANDARD"
}

variable "node_disk_size" {
  description = "Root volume size of a node in GiB."
  type        = number
  default     = 50
}

variable "node_min_size" {
  description = "Minimum number of nodes."
  type        = number
  default     = 2
}

variable "node_max_size" {
  description = "Maximum number of nodes."
  type        = number
  default     = 6
}

variable "node_desired_size" {
  description = "Initial number of nodes (later owned by the cluster autoscaler)."
  type        = number
  default     = 2
}

variable "node_labels" {
  description = "Kubernetes labels of the nodes."
  type        = map(string)
  default     = {}
}

variable "addons" {
  description = "EKS add-ons by name. version null takes the default version for the cluster's Kubernetes version; before_compute installs it before the node group."
  type = map(object({
    version        = optional(string)
    before_compute = optional(bool, false)
  }))
  default = {
    vpc-cni    = { before_compute = true }
    kube-proxy = { before_compute = true }
    coredns    = {}
  }
}

variable "access_entries" {
  description = "IAM principals that may use the Kubernetes API: principal_arn, an EKS access policy name (e.g. AmazonEKSAdminPolicy) and the namespaces it is limited to (empty: whole cluster)."
  type = map(object({
    principal_arn = string
    policy_name   = string
    namespaces    = optional(list(string), [])
  }))
  default = {}
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
