output "database_name" {
  description = "Glue database of the emails table."
  value       = module.catalog.database_name
}

output "workgroup_name" {
  description = "Athena workgroup."
  value       = module.catalog.workgroup_name
}
