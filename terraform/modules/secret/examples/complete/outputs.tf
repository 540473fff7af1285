output "parameter_name" {
  description = "Name of the parameter."
  value       = module.secret.parameter_name
}

output "kms_alias_name" {
  description = "Alias of the parameter's KMS key."
  value       = module.secret.kms_alias_name
}
