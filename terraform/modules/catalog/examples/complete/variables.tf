variable "region" {
  description = "AWS region to create the example in."
  type        = string
  default     = "eu-west-1"
}
