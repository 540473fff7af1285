variable "region" {
  description = "AWS region to create the example in."
  type        = string
  default     = "eu-west-1"
}

variable "azs" {
  description = "Availability zones of the example (in var.region)."
  type        = list(string)
  default     = ["eu-west-1a", "eu-west-1b"]
}

variable "certificate_arn" {
  description = "ACM certificate (in var.region) for the HTTPS listener."
  type        = string
}
