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

output "clients_path" {
  description = "SSM path of the clients' parameters (TOKEN_PARAMETER_PATH); null when not set."
  value       = var.clients_path
}

output "clients_path_arn" {
  description = "ARN of the clients' path, for ssm:GetParametersByPath (its parameters are <this>/<client>); null when not set."
  value       = var.clients_path == null ? null : "arn:${data.aws_partition.current.partition}:ssm:${data.aws_region.current.id}:${data.aws_caller_identity.current.account_id}:parameter${var.clients_path}"
}

output "client_parameter_arns" {
  description = "ARN of each client's parameter, by client name."
  value       = { for name, parameter in aws_ssm_parameter.client : name => parameter.arn }
}
