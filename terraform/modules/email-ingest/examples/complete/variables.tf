variable "region" {
  description = "AWS region to create the example in."
  type        = string
  default     = "eu-west-1"
}

variable "certificate_arn" {
  description = "ACM certificate (in var.region) for the API's HTTPS listener."
  type        = string
}
