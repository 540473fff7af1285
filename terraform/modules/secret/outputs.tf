output "parameter_name" {
  description = "Name of the parameter (TOKEN_PARAMETER_NAME)."
  value       = aws_ssm_parameter.this.name
}

output "parameter_arn" {
  description = "ARN of the parameter."
  value       = aws_ssm_parameter.this.arn
}

output "kms_key_arn" {
  description = "ARN of the KMS key that encrypts the parameter."
  value       = aws_kms_key.this.arn
}

output "kms_alias_name" {
  description = "Alias of the KMS key (for aws ssm put-parameter --key-id)."
  value       = aws_kms_alias.this.name
}
