output "parameter_name" {
  description = "Name of the parameter."
  value       = module.secret.parameter_name
}

output "kms_alias_name" {
  description = "Alias of the parameter's KMS key."
  value       = module.secret.kms_alias_name
}

output "clients_path" {
  description = "SSM path of the clients' parameters."
  value       = module.secret.clients_path
}

output "client_parameter_arns" {
  description = "ARN of each client's parameter, by client name."
  value       = module.secret.client_parameter_arns
}
